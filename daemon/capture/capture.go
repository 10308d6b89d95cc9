package capture

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
)

// Mode selects how packets are captured.
type Mode int

const (
	// ModeNetwork captures with an AF_PACKET SOCK_DGRAM ("cooked") socket
	// through a TPACKET_V2 ring: the kernel strips the link-layer header,
	// so nothing has to be guessed. It works on every link type, including
	// the "any" device. The default.
	ModeNetwork Mode = iota
	// ModeRaw captures with an AF_PACKET SOCK_RAW socket through a
	// TPACKET_V2 ring and skips a link header of Config.LinkHeaderLen
	// bytes, or a length guessed from the device's ARPHRD type when
	// LinkHeaderLen < 0 (the original's link-header-length).
	ModeRaw
	// ModeSocket receives knocks on a plain UDP socket bound to the knock
	// port. It needs no raw capture, but cannot see fragments (the kernel
	// reassembles them).
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
// network namespace except loopback devices.
const AnyInterface = "any"

// Config says what to capture. The zero value of each field except
// Interface and KnockPort means its default.
type Config struct {
	// Interface is the device name, or "any" for all devices but the
	// loopback ones. Knocks over a loopback device (to 127.0.0.1, ::1)
	// are only heard when Interface names that device.
	Interface string
	// Mode is the capture mode; the zero value is ModeNetwork.
	Mode Mode
	// LinkHeaderLen is the link-layer header length to skip in ModeRaw;
	// a negative value means guess it from the device's link type.
	// Ignored in the other modes. Note that 0 is a valid length (raw IP).
	LinkHeaderLen int
	// KnockPort is the UDP port the knocks arrive on.
	KnockPort uint16
	// HexDump, when non-nil, receives for every captured frame the link
	// type, the link-header length in use and a hex dump of the first
	// 128 bytes (the original's -X). Writing it allocates; it is a
	// debugging aid.
	HexDump io.Writer
	// Logger receives debug and warning logs; nil discards them.
	Logger *slog.Logger
	// AcceptForeign delivers knocks whatever their destination address:
	// it disables the own-address check and so breaks CLASSIC-4.4. Only
	// for the conformance suite's mutants, which must show that the
	// suite notices.
	AcceptForeign bool
}

// Packet is one knock candidate: a UDP datagram to the knock port whose
// payload may be a knock (CLASSIC-2.3, 2.6).
type Packet struct {
	// Src and Dst are the IP addresses; IPv4 is in its 4-byte form, and
	// an IPv6 packet never yields an IPv4-mapped address.
	Src, Dst netip.Addr
	// SrcPort and DstPort are the UDP ports.
	SrcPort, DstPort uint16
	// Payload is the UDP payload. It aliases the Conn's buffer and is
	// valid until the next Read.
	Payload []byte
	// IfIndex is the index of the device the datagram arrived on.
	IfIndex int
}

// Reasons for which Read drops a packet it saw. Read returns exactly these
// values (never wrapped), so a caller may compare with == or errors.Is.
// Packets the kernel filter drops never reach Read and are not reported
// (see the package documentation).
var (
	// ErrTruncated: the packet is too short or has a malformed header.
	ErrTruncated = errors.New("capture: truncated or malformed packet")
	// ErrIPOptions: an IPv4 header with options (IHL != 5), or an IPv6
	// extension header other than a fragment header.
	ErrIPOptions = errors.New("capture: IP options or IPv6 extension header")
	// ErrFragment: an IPv4 fragment (MF set or offset != 0) or an IPv6
	// packet with a fragment header.
	ErrFragment = errors.New("capture: IP fragment")
	// ErrChecksum: a bad IPv4 header checksum or a bad UDP checksum (an
	// IPv6 UDP checksum of 0 included): the kernel drops such a datagram,
	// so the doorman must not act on it.
	ErrChecksum = errors.New("capture: bad IP header or UDP checksum")
	// ErrMartian: an address no real packet can carry and the kernel
	// refuses: an IPv4-mapped or IPv4-compatible address in an IPv6
	// header, or an unspecified, multicast, limited-broadcast or (off a
	// loopback device) loopback source.
	ErrMartian = errors.New("capture: impossible source or destination address")
	// ErrNotLocal: the destination is not an own address of the watched
	// interface (for "any": a non-loopback address of the network
	// namespace), or with "any" the packet came over a loopback device
	// (CLASSIC-4.4).
	ErrNotLocal = errors.New("capture: destination is not a local address")
	// ErrNotCandidate: a well-formed packet that is not a UDP datagram to
	// the knock port with a payload that may be a knock. The kernel filter
	// keeps these out; one that gets past it is counted rather than hidden.
	ErrNotCandidate = errors.New("capture: not a knock candidate")
)
