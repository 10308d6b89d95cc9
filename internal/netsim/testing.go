//go:build linux

package netsim

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
)

// ForTest starts a run for a test whose name prefix is prefix (see
// [Options.Prefix]), or skips the test with a clear message when this
// process may not create network namespaces (not root, or no privilege).
// The run is closed at the test's cleanup, which fails the test if Close
// leaves anything behind. Runs of prefix that crashed earlier are swept
// first.
func ForTest(t testing.TB, prefix string) *Net {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := Sweep(prefix); err != nil {
		t.Logf("sweep of earlier %s runs: %v", prefix, err)
	}
	n, err := New(context.Background(), Options{Prefix: prefix, Artifacts: t.TempDir()})
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		t.Skipf("cannot record network runs: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("netsim close: %v", err)
		}
	})
	return n
}

// AddHostForTest is AddHost that skips the test when namespaces cannot be
// created and fails it on any other error.
func (n *Net) AddHostForTest(t testing.TB, name string) *Host {
	t.Helper()
	h, err := n.AddHost(name)
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot create network namespaces: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return h
}
