//go:build linux

package netsim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// ErrNotSniffed is returned by Sniffer.UDP when no matching datagram was
// seen in time.
var ErrNotSniffed = errors.New("netsim: no matching datagram seen")

// Sniffer reads every frame on one Ethernet interface of a host, in
// promiscuous mode, the way an attacker's capture tool would.
type Sniffer struct {
	f *os.File
}

// SniffedUDP is one UDP datagram taken off the wire, with the Ethernet
// addresses it travelled between.
type SniffedUDP struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.AddrPort
	Payload        []byte
}

// Sniff opens a promiscuous AF_PACKET socket on e, which must be an
// Ethernet interface. Frames sent after it returns are seen.
func (e *LinkEnd) Sniff() (*Sniffer, error) {
	if e.MAC == nil {
		return nil, fmt.Errorf("netsim: sniffer on %s: %w", e.Name, ErrNotEthernet)
	}
	var f *os.File
	err := e.Host.Do(func() error {
		proto := Htons(unix.ETH_P_ALL)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: e.IfIndex}); err != nil {
			unix.Close(fd)
			return err
		}
		// Promiscuous: the frames worth stealing are addressed to another MAC.
		mreq := &unix.PacketMreq{Ifindex: int32(e.IfIndex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq); err != nil {
			unix.Close(fd)
			return err
		}
		f = os.NewFile(uintptr(fd), "sniff:"+e.Name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netsim: sniffer on %s in %s: %w", e.Name, e.Host.Name(), err)
	}
	return &Sniffer{f: f}, nil
}

// Close closes the capture socket, which also leaves promiscuous mode.
func (s *Sniffer) Close() error { return s.f.Close() }

// UDP waits up to within for an unfragmented UDP datagram (IPv4 or IPv6)
// from src to dst:port and returns it; other frames are skipped.
func (s *Sniffer) UDP(src, dst netip.Addr, port uint16, within time.Duration) (*SniffedUDP, error) {
	if err := s.f.SetReadDeadline(time.Now().Add(within)); err != nil {
		return nil, err
	}
	buf := make([]byte, maxFrame)
	for {
		n, err := s.f.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("%w: %s -> %s:%d within %v", ErrNotSniffed, src, dst, port, within)
		}
		if err != nil {
			return nil, fmt.Errorf("netsim: sniff: %w", err)
		}
		if u := parseUDP(buf[:n]); u != nil && u.Src.Addr() == src && u.Dst.Addr() == dst && u.Dst.Port() == port {
			return u, nil
		}
	}
}

// parseUDP decodes an Ethernet frame holding an unfragmented IPv4 or IPv6
// UDP datagram, or returns nil.
func parseUDP(frame []byte) *SniffedUDP {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true})
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || udp == nil {
		return nil
	}
	var srcIP, dstIP net.IP
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
			return nil
		}
		srcIP, dstIP = ip.SrcIP, ip.DstIP
	case *layers.IPv6:
		if pkt.Layer(layers.LayerTypeIPv6Fragment) != nil {
			return nil
		}
		srcIP, dstIP = ip.SrcIP, ip.DstIP
	default:
		return nil
	}
	src, ok1 := netip.AddrFromSlice(srcIP)
	dst, ok2 := netip.AddrFromSlice(dstIP)
	if !ok1 || !ok2 {
		return nil
	}
	return &SniffedUDP{
		SrcMAC:  append(net.HardwareAddr(nil), eth.SrcMAC...),
		DstMAC:  append(net.HardwareAddr(nil), eth.DstMAC...),
		Src:     netip.AddrPortFrom(src.Unmap(), uint16(udp.SrcPort)),
		Dst:     netip.AddrPortFrom(dst.Unmap(), uint16(udp.DstPort)),
		Payload: append([]byte(nil), udp.Payload...),
	}
}

// SendSpoofedUDP sends payload from h to dst as a UDP datagram whose source
// is src, an address h need not own. The packet is built whole
// (UDPPacket) and handed to a raw socket, so nothing checks src. IPv4 only:
// IPv6 raw sockets take no IP header.
func (h *Host) SendSpoofedUDP(src, dst netip.AddrPort, payload []byte) error {
	if !src.Addr().Unmap().Is4() || !dst.Addr().Unmap().Is4() {
		return fmt.Errorf("netsim: spoofed datagram %v -> %v: IPv4 only", src, dst)
	}
	pkt, err := UDPPacket(src, dst, payload)
	if err != nil {
		return err
	}
	return h.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("netsim: raw socket in %s: %w", h.Name(), err)
		}
		defer unix.Close(fd)
		// IPPROTO_RAW implies it; set anyway so the intent is explicit.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
			return fmt.Errorf("netsim: IP_HDRINCL in %s: %w", h.Name(), err)
		}
		if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.Addr().Unmap().As4()}); err != nil {
			return fmt.Errorf("netsim: send spoofed datagram from %s: %w", h.Name(), err)
		}
		return nil
	})
}
