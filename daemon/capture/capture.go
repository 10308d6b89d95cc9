package capture

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Mode selects how packets are captured.
type Mode int

const (
	// ModeNetwork captures with an AF_PACKET SOCK_DGRAM ("cooked") socket:
	// the kernel strips the link-layer header, so nothing has to be guessed.
	// It works on every link type, including the "any" device. The default.
	ModeNetwork Mode = iota
	// ModeRaw captures with an AF_PACKET SOCK_RAW socket and skips a link
	// header of Config.LinkHeaderLen bytes, or a length guessed from the
	// device's ARPHRD type when LinkHeaderLen < 0 (the original's
	// link-header-length).
	ModeRaw
	// ModeSocket receives knocks on a plain UDP socket bound to the knock
	// port. It needs no raw capture, but cannot see IP options or
	// fragments (the kernel reassembles them) nor TCP SYNs.
	ModeSocket
)

// ParseMode parses a mode name: "network" (or "cooked"), "raw" or "socket".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "network", "cooked":
		return ModeNetwork, nil
	case "raw":
		return ModeRaw, nil
	case "socket":
		return ModeSocket, nil
	}
	return 0, fmt.Errorf("capture: unknown mode %q (want network, cooked, raw or socket)", s)
}

// String returns the name ParseMode accepts for m.
func (m Mode) String() string {
	switch m {
	case ModeNetwork:
		return "network"
	case ModeRaw:
		return "raw"
	case ModeSocket:
		return "socket"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// AnyInterface is the Interface name that captures on every device of the
// network namespace.
const AnyInterface = "any"

// Config says what to capture. The zero value of each field except
// Interface and KnockPort means its default.
type Config struct {
	// Interface is the device name, or "any" for all devices.
	Interface string
	// Mode is the capture mode; the zero value is ModeNetwork.
	Mode Mode
	// LinkHeaderLen is the link-layer header length to skip in ModeRaw;
	// a negative value means guess it from the device's link type.
	// Ignored in the other modes. Note that 0 is a valid length (raw IP).
	LinkHeaderLen int
	// KnockPort is the UDP port the knocks arrive on.
	KnockPort uint16
	// SYN also delivers TCP segments with SYN set and ACK clear, to any
	// port, for door tracking. Not possible in ModeSocket.
	SYN bool
	// HexDump, when non-nil, receives for every captured frame the link
	// type, the link-header length in use and a hex dump of the first
	// 128 bytes (the original's -X). Writing it allocates; it is a
	// debugging aid.
	HexDump io.Writer
	// Logger receives debug and warning logs; nil discards them.
	Logger *slog.Logger
}

// Packet is one candidate packet.
type Packet struct {
	// Src and Dst are the IP addresses; IPv4 is in its 4-byte form.
	Src, Dst netip.Addr
	// SrcPort and DstPort are the UDP or TCP ports.
	SrcPort, DstPort uint16
	// Proto is the IP protocol: 17 (UDP) or 6 (TCP).
	Proto uint8
	// TCPFlags holds the TCP flags byte (TCP only).
	TCPFlags uint8
	// Payload is the UDP payload (nil for TCP). It aliases the Conn's
	// buffer and is valid until the next Read.
	Payload []byte
	// IfIndex is the index of the device the packet arrived on.
	IfIndex int
	// Time is when the kernel received the packet (SO_TIMESTAMPNS), set
	// for TCP packets in ModeNetwork and ModeRaw; zero when unknown. The
	// daemon compares it with when a firewall rule took effect, since a
	// packet may be read long after it arrived.
	Time time.Time
}

// IP protocol numbers and TCP flags used in Packet.
const (
	ProtoTCP = 6
	ProtoUDP = 17

	TCPFlagFIN = 0x01
	TCPFlagSYN = 0x02
	TCPFlagRST = 0x04
	TCPFlagACK = 0x10
)

// Reasons for which Read drops a packet it saw. Read returns exactly these
// values (never wrapped), so a caller may compare with == or errors.Is.
var (
	// ErrTruncated: the packet is too short or has a malformed header.
	ErrTruncated = errors.New("capture: truncated or malformed packet")
	// ErrIPOptions: an IPv4 header with options (IHL != 5), or an IPv6
	// extension header other than a fragment header.
	ErrIPOptions = errors.New("capture: IP options or IPv6 extension header")
	// ErrFragment: an IPv4 fragment (MF set or offset != 0) or an IPv6
	// packet with a fragment header.
	ErrFragment = errors.New("capture: IP fragment")
	// ErrNotLocal: the destination is not an address of the capture
	// interface (for "any": of the network namespace).
	ErrNotLocal = errors.New("capture: destination is not a local address")
	// ErrNotCandidate: a well-formed packet that is neither a UDP packet to
	// the knock port nor (with Config.SYN) a TCP SYN. The kernel filter
	// should keep these out; it is counted rather than hidden.
	ErrNotCandidate = errors.New("capture: not a knock or SYN")
)

// isCandidate reports whether a decoded packet is one the Conn delivers.
func isCandidate(p *Packet, knockPort uint16, syn bool) bool {
	switch p.Proto {
	case ProtoUDP:
		return p.DstPort == knockPort
	case ProtoTCP:
		return syn && p.TCPFlags&(TCPFlagSYN|TCPFlagACK) == TCPFlagSYN
	}
	return false
}
