//go:build linux

package conformance

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Timeouts for the reachability probes. A door opens a connection in
// milliseconds on the suite's bridge; a closed port drops the SYN. A
// "closed" verdict waits past the kernel's first SYN retransmission (1 s),
// so a door that opened late on a loaded machine still counts as open
// rather than passing a case by luck.
const (
	openTimeout   = 1500 * time.Millisecond
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
	err := InNS(h.NS, func() error {
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
	err := InNS(h.NS, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := d.DialContext(ctx, family("tcp", dst), netip.AddrPortFrom(dst, uint16(port)).String())
		conn = c
		return err
	})
	return conn, err
}

// rawIPv4 describes a hand-built IPv4/UDP datagram.
type rawIPv4 struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Options          []byte // multiple of 4 bytes
	MF               bool
	FragOffset       uint16 // in 8-byte units
	Payload          []byte
}

func (r rawIPv4) bytes() []byte {
	hl := 20 + len(r.Options)
	udpLen := 8 + len(r.Payload)
	b := make([]byte, hl+udpLen)
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], uint16(time.Now().UnixNano()))
	ff := r.FragOffset & 0x1fff
	if r.MF {
		ff |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], ff)
	b[8] = 64
	b[9] = unix.IPPROTO_UDP
	s4, d4 := r.Src.As4(), r.Dst.As4()
	copy(b[12:], s4[:])
	copy(b[16:], d4[:])
	copy(b[20:], r.Options)
	binary.BigEndian.PutUint16(b[10:], inetChecksum(b[:hl], 0))
	u := b[hl:]
	binary.BigEndian.PutUint16(u[0:], r.SrcPort)
	binary.BigEndian.PutUint16(u[2:], r.DstPort)
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen))
	copy(u[8:], r.Payload)
	var pseudo uint32
	for i := 0; i < 4; i += 2 {
		pseudo += uint32(binary.BigEndian.Uint16(s4[i:])) + uint32(binary.BigEndian.Uint16(d4[i:]))
	}
	pseudo += unix.IPPROTO_UDP + uint32(udpLen)
	cs := inetChecksum(u, pseudo)
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], cs)
	return b
}

func inetChecksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// rawSend sends a hand-built IPv4 datagram from host h (IP_HDRINCL).
func rawSend(h Host, r rawIPv4) error {
	return InNS(h.NS, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrInet4{Addr: r.Dst.As4()}
		if err := unix.Sendto(fd, r.bytes(), 0, sa); err != nil {
			return fmt.Errorf("raw send: %w", err)
		}
		return nil
	})
}

// listeners serves TCP ports in the server namespace: each accepted
// connection is held until the peer closes it.
type listeners struct {
	ls []net.Listener
	wg sync.WaitGroup
}

func listen(h Host, ports []int) (*listeners, error) {
	l := &listeners{}
	for _, p := range ports {
		var ln net.Listener
		err := InNS(h.NS, func() error {
			var err error
			// Dual-stack: the same listener serves IPv4 and IPv6 probes.
			ln, err = net.Listen("tcp", ":"+strconv.Itoa(p))
			return err
		})
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("listen %d in %s: %w", p, h.NS, err)
		}
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
					_, _ = io.Copy(io.Discard, c)
				}()
			}
		}()
	}
	return l, nil
}

func (l *listeners) Close() {
	for _, ln := range l.ls {
		ln.Close()
	}
	l.wg.Wait()
}

// udpListen opens a UDP socket on port in h's namespace (client cases).
func udpListen(h Host, port int) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := InNS(h.NS, func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		return err
	})
	return c, err
}
