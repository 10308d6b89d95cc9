//go:build linux

package conformance

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/doorman-project/doorman/internal/netsim"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// sniffer records every frame on a host's LAN interface (AF_PACKET) so a
// case can check what the server sent back.
type sniffer struct {
	fd       int
	stopOnce sync.Once
	mu       sync.Mutex
	frames   [][]byte
	stamps   []time.Time
	done     chan struct{}
}

func startSniffer(h Host) (*sniffer, error) {
	s := &sniffer{fd: -1, done: make(chan struct{})}
	err := h.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(netsim.Htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		s.fd = fd
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: netsim.Htons(unix.ETH_P_ALL), Ifindex: h.ifIndex()})
	})
	if err != nil {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
		return nil, err
	}
	tv := unix.Timeval{Usec: 20000} // how long stop may wait for the loop
	_ = unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	go s.loop()
	return s, nil
}

func (s *sniffer) loop() {
	defer close(s.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			return
		}
		s.mu.Lock()
		s.frames = append(s.frames, append([]byte(nil), buf[:n]...))
		s.stamps = append(s.stamps, time.Now())
		s.mu.Unlock()
	}
}

// stop ends the capture and returns the frames seen. It may be called
// more than once.
func (s *sniffer) stop() [][]byte {
	s.stopOnce.Do(func() {
		unix.Shutdown(s.fd, unix.SHUT_RDWR)
		unix.Close(s.fd)
		<-s.done
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames
}

// writePcap saves the captured frames (Ethernet) to path.
func (s *sniffer) writePcap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, fr := range s.frames {
		ci := gopacketCaptureInfo(s.stamps[i], len(fr))
		if err := w.WritePacket(ci, fr); err != nil {
			return err
		}
	}
	return nil
}

// reply is a packet the server sent that may answer a datagram: an ICMP
// or ICMPv6 error, or a UDP datagram.
type reply struct {
	desc string
	icmp bool
	// quotedDstPort is, for an ICMP error quoting a UDP datagram, the
	// quoted datagram's destination port; else 0.
	quotedDstPort int
	udpDstPort    int // for UDP: its destination port
}

// parseReply reports whether frame (Ethernet) comes from one of srcs and
// is an ICMP message, an ICMPv6 error or a UDP datagram, and what it is.
// ICMPv6 informational messages (neighbour discovery, echo) are not
// replies to a datagram and are ignored.
func parseReply(frame []byte, srcs ...netip.Addr) (reply, bool) {
	if len(frame) < 14 {
		return reply{}, false
	}
	var (
		src   netip.Addr
		proto uint8
		l4    []byte
	)
	switch ip := frame[14:]; binary.BigEndian.Uint16(frame[12:]) {
	case 0x0800:
		if len(ip) < 20 || len(ip) < int(ip[0]&0x0f)*4 {
			return reply{}, false
		}
		src, proto, l4 = netip.AddrFrom4([4]byte(ip[12:16])), ip[9], ip[int(ip[0]&0x0f)*4:]
	case 0x86dd:
		if len(ip) < 40 {
			return reply{}, false
		}
		src, proto, l4 = netip.AddrFrom16([16]byte(ip[8:24])), ip[6], ip[40:]
	default:
		return reply{}, false
	}
	if !slices.Contains(srcs, src) {
		return reply{}, false
	}
	switch {
	case (proto == unix.IPPROTO_ICMP || proto == unix.IPPROTO_ICMPV6) && len(l4) >= 8:
		if proto == unix.IPPROTO_ICMPV6 && l4[0] >= 128 {
			return reply{}, false
		}
		r := reply{icmp: true, desc: fmt.Sprintf("ICMP type %d code %d from %s", l4[0], l4[1], src)}
		if proto == unix.IPPROTO_ICMPV6 {
			r.desc = "ICMPv6" + r.desc[4:]
		}
		r.quotedDstPort = quotedUDPDstPort(l4[8:])
		if r.quotedDstPort != 0 {
			r.desc += fmt.Sprintf(" about a datagram to port %d", r.quotedDstPort)
		}
		return r, true
	case proto == unix.IPPROTO_UDP && len(l4) >= 8:
		sp, dp := binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		return reply{desc: fmt.Sprintf("UDP %s:%d -> port %d", src, sp, dp), udpDstPort: int(dp)}, true
	}
	return reply{}, false
}

// quotedUDPDstPort returns the destination port of the UDP datagram an
// ICMP error quotes (q starts at the quoted IP header), or 0.
func quotedUDPDstPort(q []byte) int {
	var udp []byte
	switch {
	case len(q) >= 20 && q[0]>>4 == 4 && q[9] == unix.IPPROTO_UDP:
		udp = q[int(q[0]&0x0f)*4:]
	case len(q) >= 40 && q[0]>>4 == 6 && q[6] == unix.IPPROTO_UDP:
		udp = q[40:]
	}
	if len(udp) < 4 {
		return 0
	}
	return int(binary.BigEndian.Uint16(udp[2:]))
}
