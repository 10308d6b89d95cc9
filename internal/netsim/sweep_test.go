//go:build linux

package netsim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vishvananda/netns"
)

func TestIntegrationCloseRemovesEverything(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	if _, err := n.Link(a, b, LinkOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Link(a, b, LinkOptions{Delay: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.LAN("lan", a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Record("eth0", "close.pcap"); err != nil {
		t.Fatal(err)
	}
	if got := runNamespaces(t, n.RunID()); len(got) != 4 { // probe, a, b, switch
		t.Fatalf("namespaces of the run: %v", got)
	}
	rec := filepath.Join(runDir, testPrefix, n.RunID()+".pid")
	if _, err := os.Stat(rec); err != nil {
		t.Fatalf("run record: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if got := runNamespaces(t, n.RunID()); len(got) != 0 {
		t.Errorf("left after Close: %v", got)
	}
	if h, err := netns.GetFromName(a.NS()); err == nil {
		h.Close()
		t.Errorf("namespace %s still opens after Close", a.NS())
	}
	if _, err := os.Stat(rec); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run record still there: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := n.AddHost("late"); !errors.Is(err, ErrClosed) {
		t.Errorf("AddHost after Close: %v, want ErrClosed", err)
	}
}

func TestIntegrationContextCloses(t *testing.T) {
	_ = newNet(t) // skips unless namespaces work
	ctx, cancel := context.WithCancel(context.Background())
	n, err := New(ctx, Options{Prefix: testPrefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if _, err := n.AddHost("x"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := n.Close(); err != nil { // waits for the AfterFunc's Close
		t.Fatal(err)
	}
	if got := runNamespaces(t, n.RunID()); len(got) != 0 {
		t.Errorf("left after cancel: %v", got)
	}
}

func TestIntegrationSweep(t *testing.T) {
	live := newNet(t)
	if _, err := live.AddHost("alive"); err != nil {
		t.Fatal(err)
	}
	// A crashed run: its namespace exists, its record is not locked.
	dead := testPrefix + "-0badf00d"
	deadNS := dead + "-ghost"
	if err := onThread(func() error {
		h, err := netns.NewNamed(deadNS)
		if err == nil {
			h.Close()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.DeleteNamed(deadNS) })
	rec := filepath.Join(runDir, testPrefix, dead+".pid")
	if err := os.WriteFile(rec, []byte("999999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(rec) })
	// A namespace of another prefix that merely starts alike is not ours.
	other := testPrefix + "x-0badf00d-ghost"
	if err := onThread(func() error {
		h, err := netns.NewNamed(other)
		if err == nil {
			h.Close()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.DeleteNamed(other) })

	removed, err := Sweep(testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, deadNS) {
		t.Errorf("Sweep removed %v, want %s among them", removed, deadNS)
	}
	if hasPrefix(removed, live.RunID()) || hasPrefix(removed, other) {
		t.Errorf("Sweep removed a live or foreign namespace: %v", removed)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, deadNS)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead namespace still present: %v", err)
	}
	if _, err := os.Stat(rec); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead run record still present: %v", err)
	}
	for _, ns := range []string{live.Host("alive").NS(), other} {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err != nil {
			t.Errorf("Sweep touched %s: %v", ns, err)
		}
	}
	if _, err := Sweep("bad-prefix"); !errors.Is(err, ErrBadName) {
		t.Errorf("Sweep(bad-prefix) = %v, want ErrBadName", err)
	}
}
