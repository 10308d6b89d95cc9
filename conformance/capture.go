//go:build linux

package conformance

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// sniffer records every frame on a host's LAN interface (AF_PACKET) so a
// case can check what the server sent back.
type sniffer struct {
	fd     int
	mu     sync.Mutex
	frames [][]byte
	stamps []time.Time
	done   chan struct{}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func startSniffer(h Host) (*sniffer, error) {
	s := &sniffer{fd: -1, done: make(chan struct{})}
	err := InNS(h.NS, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		s.fd = fd
		ifi, err := netInterfaceIndex(IfName)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi})
	})
	if err != nil {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
		return nil, err
	}
	tv := unix.Timeval{Usec: 100000}
	_ = unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	go s.loop()
	return s, nil
}

func netInterfaceIndex(name string) (int, error) {
	// Called inside the namespace: the netlink socket net opens is there.
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	return ifi.Index, nil
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

// stop ends the capture and returns the frames seen.
func (s *sniffer) stop() [][]byte {
	unix.Shutdown(s.fd, unix.SHUT_RDWR)
	unix.Close(s.fd)
	<-s.done
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

// replyFrom describes a frame from src that is an ICMP message or a UDP
// datagram to port, or "" if it is neither.
func replyFrom(frame []byte, src netip.Addr, port int) string {
	if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return ""
	}
	ip := frame[14:]
	if netip.AddrFrom4([4]byte(ip[12:16])) != src {
		return ""
	}
	hl := int(ip[0]&0x0f) * 4
	switch ip[9] {
	case unix.IPPROTO_ICMP:
		if len(ip) > hl+1 {
			return fmt.Sprintf("ICMP type %d code %d from %s", ip[hl], ip[hl+1], src)
		}
		return "ICMP from " + src.String()
	case unix.IPPROTO_UDP:
		if len(ip) >= hl+8 && int(binary.BigEndian.Uint16(ip[hl+2:])) == port {
			return fmt.Sprintf("UDP %s:%d -> port %d", src, binary.BigEndian.Uint16(ip[hl:]), port)
		}
	}
	return ""
}
