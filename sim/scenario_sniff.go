//go:build linux

package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// errNotSniffed is returned when the sniffer saw no matching datagram in time.
var errNotSniffed = errors.New("no matching datagram seen")

// sniffer reads every frame on one Ethernet interface of a host, in
// promiscuous mode, the way an attacker's capture tool would.
type sniffer struct {
	f *os.File
}

// sniffedUDP is one UDP datagram taken off the wire, with the Ethernet
// addresses it travelled between.
type sniffedUDP struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.AddrPort
	payload        []byte
}

// openSniffer opens a promiscuous AF_PACKET socket on e, which must be an
// Ethernet interface. Frames sent after it returns are seen.
func openSniffer(e *LinkEnd) (*sniffer, error) {
	if e.MAC == nil {
		return nil, fmt.Errorf("sniffer on %s: %w", e.Name, ErrNotEthernet)
	}
	var f *os.File
	err := e.Host.Do(func() error {
		proto := htons(unix.ETH_P_ALL)
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
		return nil, fmt.Errorf("sniffer on %s in %s: %w", e.Name, e.Host.Name(), err)
	}
	return &sniffer{f: f}, nil
}

// Close closes the capture socket, which also leaves promiscuous mode.
func (s *sniffer) Close() error { return s.f.Close() }

// udpTo waits up to within for an IPv4 UDP datagram from src to dst:port
// and returns it; other frames are skipped.
func (s *sniffer) udpTo(src, dst netip.Addr, port uint16, within time.Duration) (*sniffedUDP, error) {
	if err := s.f.SetReadDeadline(time.Now().Add(within)); err != nil {
		return nil, err
	}
	buf := make([]byte, maxFrame)
	for {
		n, err := s.f.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("%w: %s -> %s:%d within %v", errNotSniffed, src, dst, port, within)
		}
		if err != nil {
			return nil, fmt.Errorf("sniff: %w", err)
		}
		if u := parseUDP4(buf[:n]); u != nil && u.src.Addr() == src && u.dst.Addr() == dst && u.dst.Port() == port {
			return u, nil
		}
	}
}

// parseUDP4 decodes an Ethernet frame holding an unfragmented IPv4 UDP
// datagram, or returns nil.
func parseUDP4(frame []byte) *sniffedUDP {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true})
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || ip == nil || udp == nil || ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
		return nil
	}
	src, ok1 := netip.AddrFromSlice(ip.SrcIP)
	dst, ok2 := netip.AddrFromSlice(ip.DstIP)
	if !ok1 || !ok2 {
		return nil
	}
	return &sniffedUDP{
		srcMAC:  append(net.HardwareAddr(nil), eth.SrcMAC...),
		dstMAC:  append(net.HardwareAddr(nil), eth.DstMAC...),
		src:     netip.AddrPortFrom(src.Unmap(), uint16(udp.SrcPort)),
		dst:     netip.AddrPortFrom(dst.Unmap(), uint16(udp.DstPort)),
		payload: append([]byte(nil), udp.Payload...),
	}
}

// sendSpoofedUDP sends payload from h to dst as an IPv4 UDP datagram whose
// source is src, an address h does not own. The headers are built here
// and handed to the kernel whole (IP_HDRINCL), so nothing checks src.
func sendSpoofedUDP(h *Host, src, dst netip.AddrPort, payload []byte) error {
	pkt, err := spoofedUDP4(src, dst, payload)
	if err != nil {
		return err
	}
	return h.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("raw socket in %s: %w", h.Name(), err)
		}
		defer unix.Close(fd)
		// IPPROTO_RAW implies it; set anyway so the intent is explicit.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
			return fmt.Errorf("IP_HDRINCL in %s: %w", h.Name(), err)
		}
		if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.Addr().As4()}); err != nil {
			return fmt.Errorf("send spoofed datagram from %s: %w", h.Name(), err)
		}
		return nil
	})
}

// spoofedUDP4 returns an IPv4 header (no options) and a UDP header followed
// by payload, both checksums filled in.
func spoofedUDP4(src, dst netip.AddrPort, payload []byte) ([]byte, error) {
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return nil, fmt.Errorf("spoofed datagram %v -> %v: IPv4 only", src, dst)
	}
	const ipLen, udpLen = 20, 8
	total := ipLen + udpLen + len(payload)
	if total > 0xffff {
		return nil, fmt.Errorf("spoofed datagram: payload of %d bytes too long", len(payload))
	}
	var id [2]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	b := make([]byte, total)
	ip := b[:ipLen]
	ip[0] = 0x45 // version 4, 5 words
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	copy(ip[4:6], id[:])
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF, offset 0
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(0, ip))

	udp := b[ipLen:]
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen+len(payload)))
	copy(udp[udpLen:], payload)
	// Pseudo-header: addresses, protocol, UDP length.
	var pseudo [12]byte
	copy(pseudo[0:4], s4[:])
	copy(pseudo[4:8], d4[:])
	pseudo[9] = unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(udp)))
	sum := checksum(sum16(0, pseudo[:]), udp)
	if sum == 0 {
		sum = 0xffff // 0 means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(udp[6:], sum)
	return b, nil
}

// sum16 adds b to the running one's-complement sum acc, as 16-bit
// big-endian words (an odd last byte padded with zero).
func sum16(acc uint32, b []byte) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

// checksum finishes the Internet checksum (RFC 1071) of b on top of acc.
func checksum(acc uint32, b []byte) uint16 {
	acc = sum16(acc, b)
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}

// replayHosts is the replay scenario's topology: everyone on one LAN whose
// bridge floods like a hub, and a guest list that allows client and
// client2 but not foreign.
type replayHosts struct {
	lan                                       *LAN
	server, client, client2, foreign, sniffer *Host
	allowed                                   netip.Prefix
}

// replayLAN builds the replay topology and starts doormand on the server.
func replayLAN(ctx context.Context, r *Run) (*replayHosts, *doorman, error) {
	t := &replayHosts{}
	hosts := make([]*Host, 0, 5)
	for _, p := range []struct {
		name string
		h    **Host
	}{{"server", &t.server}, {"client", &t.client}, {"client2", &t.client2}, {"foreign", &t.foreign}, {"sniffer", &t.sniffer}} {
		h, err := r.Net.AddHost(p.name)
		if err != nil {
			return nil, nil, err
		}
		*p.h = h
		hosts = append(hosts, h)
	}
	var err error
	if t.lan, err = r.Net.LAN("lan", hosts...); err != nil {
		return nil, nil, err
	}
	// A bridge sends unicast only to the port it learned the MAC on; the
	// sniffer must see client->server frames as on a shared medium.
	if err := t.lan.SetHub(); err != nil {
		return nil, nil, err
	}
	for _, h := range hosts {
		r.Step("host %s at %s", h.Name(), h.Addr4())
	}
	r.Step("LAN %s bridge set to flood every frame to every port (hub)", t.lan.Prefix4())
	// Members get consecutive addresses: server .1, client .2, client2 .3,
	// foreign .4, so a /30 holds both clients and leaves foreign out.
	t.allowed = netip.PrefixFrom(t.client2.Addr4(), 30).Masked()
	if !t.allowed.Contains(t.client.Addr4()) || !t.allowed.Contains(t.client2.Addr4()) || t.allowed.Contains(t.foreign.Addr4()) {
		return nil, nil, fmt.Errorf("replay topology: %v does not separate clients %s, %s from foreign %s",
			t.allowed, t.client.Addr4(), t.client2.Addr4(), t.foreign.Addr4())
	}
	end := t.lan.End(t.server)
	if end == nil {
		return nil, nil, errors.New("server has no LAN interface")
	}
	d, err := setupDoorman(ctx, r, t.server, end.Name, t.allowed)
	if err != nil {
		return nil, nil, err
	}
	return t, d, nil
}

// countLines counts the log lines holding every one of subs.
func (d *doorman) countLines(subs ...string) int {
	n := 0
	for _, line := range strings.Split(d.log(), "\n") {
		ok := true
		for _, s := range subs {
			if !strings.Contains(line, s) {
				ok = false
				break
			}
		}
		if ok && line != "" {
			n++
		}
	}
	return n
}

// waitLines waits until at least n log lines hold every one of subs.
func (d *doorman) waitLines(n int, within time.Duration, subs ...string) bool {
	deadline := time.Now().Add(within)
	for d.countLines(subs...) < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// srcField is the log field naming a knock's source address; the trailing
// space keeps 198.18.1.2 from matching 198.18.1.25.
func srcField(a netip.Addr) string { return "src=" + a.String() + " " }
