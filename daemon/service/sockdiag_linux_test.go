package service

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/doorman-project/doorman/daemon"
)

// TestSockDiagDualStack: an IPv4 connection to a dual-stack listener (":"
// without IPV6_V6ONLY, as Go and Java servers listen) lives in an IPv6
// socket with IPv4-mapped addresses; the door must still see it (audit
// finding 12), from established to closed.
func TestSockDiagDualStack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("sock_diag lookups of other sockets need root")
	}
	ln, err := net.Listen("tcp", ":0") // dual-stack, every address; only loopback is used
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := <-accepted
	local := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	remote := c.LocalAddr().(*net.TCPAddr).AddrPort()
	sd, err := NewSockDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if got := sd.State(local, remote); got != daemon.ConnEstablished {
		t.Fatalf("IPv4 connection to a dual-stack listener: %v, want established", got)
	}
	srv.Close() // the server closes first: its socket lingers in TIME-WAIT
	c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := sd.State(local, remote)
		if got == daemon.ConnClosed || got == daemon.ConnNone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after both ends closed: %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
