//go:build linux

package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Timeouts for the reachability probes. A door opens a connection in
// milliseconds on the suite's bridge; a closed port drops the SYN. A
// "closed" verdict waits past the kernel's first SYN retransmission (1 s),
// so a door that opened late on a loaded machine still counts as open
// rather than passing a case by luck. An "open" verdict waits past the
// second (at 3 s): how fast a door opens is no requirement, and a slow
// one on a loaded machine must not fail a case.
const (
	openTimeout   = 3500 * time.Millisecond
	closedTimeout = 1300 * time.Millisecond
	// settle is how long a knock is given to take effect before a probe.
	settle = 300 * time.Millisecond
)

// family returns proto ("udp" or "tcp") with the suffix for dst's address
// family, so a probe never silently falls back to the other family.
func family(proto string, dst netip.Addr) string {
	if dst.Is4() || dst.Is4In6() {
		return proto + "4"
	}
	return proto + "6"
}

// udpSend sends payload from host h to dst:port over a normal UDP socket
// and returns the local source port it used.
func udpSend(h Host, dst netip.Addr, port int, payload []byte) (int, error) {
	var conn *net.UDPConn
	err := h.Do(func() error {
		c, err := net.DialUDP(family("udp", dst), nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(port))))
		conn = c
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("udp from %s: %w", h.NS, err)
	}
	defer conn.Close()
	if _, err := conn.Write(payload); err != nil {
		return 0, fmt.Errorf("udp send from %s: %w", h.NS, err)
	}
	return conn.LocalAddr().(*net.UDPAddr).Port, nil
}

// dialTCP connects from h to dst:port within timeout; the caller closes the
// connection.
func dialTCP(h Host, dst netip.Addr, port int, timeout time.Duration) (net.Conn, error) {
	return dialWith(h, net.Dialer{Timeout: timeout}, dst, port, timeout)
}

// dialWith connects from h with d. The socket is created inside the
// namespace; connecting may go on after the thread has switched back.
func dialWith(h Host, d net.Dialer, dst netip.Addr, port int, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := h.Do(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := d.DialContext(ctx, family("tcp", dst), netip.AddrPortFrom(dst, uint16(port)).String())
		conn = c
		return err
	})
	return conn, err
}

// rawSend sends hand-built IPv4 packets from host h (IP_HDRINCL: the
// kernel routes them and fills in the header checksum, nothing else).
func rawSend(h Host, dst netip.Addr, pkts ...[]byte) error {
	return h.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrInet4{Addr: dst.As4()}
		for _, p := range pkts {
			if err := unix.Sendto(fd, p, 0, sa); err != nil {
				return fmt.Errorf("raw send: %w", err)
			}
		}
		return nil
	})
}

// listeners serves TCP ports in the server namespace: each accepted
// connection echoes what it receives until the peer closes it, so a case
// can tell that a connection still carries data.
type listeners struct {
	ls []net.Listener
	wg sync.WaitGroup
}

func listen(h Host, ports []int) (*listeners, error) {
	l := &listeners{}
	for _, p := range ports {
		// One socket per family, as sshd has by default: an IPv4
		// connection is then an AF_INET socket. (On a dual-stack socket
		// it would be AF_INET6 with IPv4-mapped addresses; see the
		// conformance README's notes on what the suite does not vary.)
		for _, network := range []string{"tcp4", "tcp6"} {
			var ln net.Listener
			err := h.Do(func() error {
				var err error
				ln, err = net.Listen(network, ":"+strconv.Itoa(p))
				return err
			})
			if err != nil {
				l.Close()
				return nil, fmt.Errorf("listen %s %d in %s: %w", network, p, h.NS, err)
			}
			l.serve(ln)
		}
	}
	return l, nil
}

// serve accepts on ln until it is closed.
func (l *listeners) serve(ln net.Listener) {
	l.ls = append(l.ls, ln)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

func (l *listeners) Close() {
	for _, ln := range l.ls {
		ln.Close()
	}
	l.wg.Wait()
}

// udpListen opens a UDP socket on port in h's namespace (client cases).
// A socket just closed may live on for a moment in a process another lane
// forked at that instant (until its exec closes it), so a port in use is
// tried again for a while before it counts.
func udpListen(h Host, port int) (*net.UDPConn, error) {
	var c *net.UDPConn
	listen := func() error {
		return h.Do(func() error {
			var err error
			c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
			return err
		})
	}
	err := listen()
	for end := time.Now().Add(time.Second); errors.Is(err, syscall.EADDRINUSE) && time.Now().Before(end); err = listen() {
		time.Sleep(20 * time.Millisecond)
	}
	return c, err
}
