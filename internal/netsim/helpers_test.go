//go:build linux

package netsim

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testPrefix keeps this package's runs apart from everyone else's, so the
// Sweep test can only ever hit runs of these tests.
const testPrefix = "dmsimt"

// newNet starts a run for an integration test, skipping when namespaces
// cannot be created, and checks at cleanup that Close left nothing behind.
func newNet(t *testing.T) *Net {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sim integration tests need root (network namespaces)")
	}
	n, err := New(t.Context(), Options{Prefix: testPrefix, Artifacts: t.TempDir()})
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		t.Skipf("cannot record runs: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if left := runNamespaces(t, n.RunID()); len(left) > 0 {
			t.Errorf("namespaces left after Close: %v", left)
		}
	})
	// Probe with a real namespace rather than guessing from the uid.
	if _, err := n.AddHost("probe"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("cannot create network namespaces: %v", err)
		}
		t.Fatal(err)
	}
	return n
}

// runNamespaces lists the named namespaces of a run.
func runNamespaces(t *testing.T, runID string) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if isRunNamespace(e.Name(), runID) {
			out = append(out, e.Name())
		}
	}
	return out
}

func mustHost(t *testing.T, n *Net, name string) *Host {
	t.Helper()
	h, err := n.AddHost(name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// listenUDP opens a UDP socket inside h bound to addr (port chosen by the
// kernel); it is closed at cleanup.
func listenUDP(t *testing.T, h *Host, addr netip.Addr) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := h.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s on %v: %v", h.Name(), addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echoServer answers every datagram with "echo:"+payload and records the
// source address of each one.
type echoServer struct {
	conn *net.UDPConn
	mu   sync.Mutex
	from []netip.AddrPort
}

func startEcho(t *testing.T, h *Host, addr netip.Addr) *echoServer {
	t.Helper()
	s := &echoServer{conn: listenUDP(t, h, addr)}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := s.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.from = append(s.from, from)
			s.mu.Unlock()
			s.conn.WriteToUDPAddrPort(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	return s
}

func (s *echoServer) addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (s *echoServer) sources() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.AddrPort(nil), s.from...)
}

// roundTrip sends a datagram from a socket in client to dst and waits for
// the echo, trying a few times; it returns the time of the successful try.
func roundTrip(t *testing.T, client *Host, dst netip.AddrPort, tries int, wait time.Duration) (time.Duration, error) {
	t.Helper()
	unspec := netip.IPv6Unspecified()
	if dst.Addr().Is4() {
		unspec = netip.IPv4Unspecified()
	}
	c := listenUDP(t, client, unspec)
	buf := make([]byte, 2048)
	for i := range tries {
		msg := fmt.Appendf(nil, "ping-%d", i)
		start := time.Now()
		if _, err := c.WriteToUDPAddrPort(msg, dst); err != nil {
			return 0, err
		}
		c.SetReadDeadline(time.Now().Add(wait))
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				break // timeout: next try
			}
			if bytes.Equal(buf[:n], append([]byte("echo:"), msg...)) {
				return time.Since(start), nil
			}
		}
	}
	return 0, fmt.Errorf("no echo from %v after %d tries", dst, tries)
}

// reach asserts that client reaches an echo server at dst in server.
func reach(t *testing.T, client, server *Host, dst netip.Addr) {
	t.Helper()
	s := startEcho(t, server, dst)
	if _, err := roundTrip(t, client, s.addr(), 5, time.Second); err != nil {
		t.Errorf("%s → %s (%v): %v", client.Name(), server.Name(), dst, err)
	}
}

func inPrefix(t *testing.T, what string, a netip.Addr, p string) {
	t.Helper()
	if !netip.MustParsePrefix(p).Contains(a) {
		t.Errorf("%s %v not in %s", what, a, p)
	}
}

func hasPrefix(list []string, p string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
