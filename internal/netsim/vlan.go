//go:build linux

package netsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// EtherType values used here.
const (
	EtherTypeIPv4  = 0x0800
	EtherTypeIPv6  = 0x86dd
	EtherTypeDot1Q = 0x8100
)

// Ethernet framing sizes.
const (
	ethHeaderLen = 14
	dot1QLen     = 4
	// MaxVID is the largest usable VLAN id; 4095 is reserved.
	MaxVID = 4094
)

// ErrBadVID is returned for a VLAN id above MaxVID.
var ErrBadVID = errors.New("netsim: VLAN id out of range")

// InjectTagged sends ipPacket (IPv4 or IPv6, chosen by its version nibble)
// out of this end inside an 802.1Q-tagged Ethernet frame with VLAN id vid,
// addressed to the peer's MAC (broadcast on a LAN).
//
// This stands in for a VLAN sub-interface, which this kernel cannot create:
// the receiving host sees a tagged frame arriving on its parent interface,
// so AF_PACKET listeners and captures (including Record) get it with the tag
// (for those that read PACKET_AUXDATA). It does not give a VLAN interface of
// its own: the receiving kernel has no address on the VLAN, delivers the
// packet to no socket, and nothing answers.
func (e *LinkEnd) InjectTagged(vid uint16, ipPacket []byte) error {
	if vid > MaxVID {
		return fmt.Errorf("%w: %d", ErrBadVID, vid)
	}
	if len(ipPacket) == 0 {
		return errors.New("netsim: InjectTagged: empty packet")
	}
	var et uint16
	switch ipPacket[0] >> 4 {
	case 4:
		et = EtherTypeIPv4
	case 6:
		et = EtherTypeIPv6
	default:
		return fmt.Errorf("netsim: InjectTagged: IP version %d", ipPacket[0]>>4)
	}
	if e.kind == kindTun {
		return fmt.Errorf("netsim: InjectTagged on %s: %w", e.Name, ErrNotEthernet)
	}
	dst := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if e.peer != nil && len(e.peer.MAC) == 6 {
		dst = e.peer.MAC
	}
	return e.InjectFrame(TaggedFrame(dst, e.MAC, vid, et, ipPacket))
}

// InjectFrame writes a complete link-layer frame (Ethernet, or a raw IP
// packet on a tun end) out of this end with an AF_PACKET socket, bypassing
// the host's IP stack.
func (e *LinkEnd) InjectFrame(frame []byte) error {
	return e.Host.Do(func() error {
		// Protocol 0: the socket only sends and never queues received frames.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("netsim: packet socket in %s: %w", e.Host.name, err)
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Ifindex: e.IfIndex}
		if len(frame) >= ethHeaderLen && e.kind != kindTun {
			sa.Halen = 6
			copy(sa.Addr[:], frame[:6])
			sa.Protocol = Htons(binary.BigEndian.Uint16(frame[12:14]))
		}
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			return fmt.Errorf("netsim: inject on %s in %s: %w", e.Name, e.Host.name, err)
		}
		return nil
	})
}

// Htons converts a 16-bit value to network byte order on any host, as
// sockaddr_ll's protocol field (unix.SockaddrLinklayer.Protocol) and the
// protocol argument of an AF_PACKET socket need.
func Htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
