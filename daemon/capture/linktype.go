package capture

import "fmt"

// ARPHRD device types (linux/if_arp.h), kept here so the guess table is
// plain data that every GOOS can test.
const (
	arphrdEther    = 1
	arphrdPPP      = 512
	arphrdRawIP    = 519
	arphrdTunnel   = 768 // ipip
	arphrdTunnel6  = 769
	arphrdLoopback = 772
	arphrdSIT      = 776
	arphrdNone     = 0xFFFE // tun without link layer
)

// linkTypeAny is LinkType of a Conn on the "any" device.
const linkTypeAny = "any (cooked)"

// linkInfo is what the package knows about one ARPHRD type.
type linkInfo struct {
	name string
	// rawHdrLen is the link header AF_PACKET SOCK_RAW shows on a received
	// frame; -1 when it cannot be known from the type alone.
	rawHdrLen int
}

// lookupLink is the table of known ARPHRD types and the header SOCK_RAW
// shows on a received frame. Ethernet-like devices keep their 14-byte
// header; for 802.1Q frames the kernel has already moved the tag into the
// skb (reported in PACKET_AUXDATA), so the header is still 14, not
// libpcap's 18. Devices without header_ops (tun, ppp, ip tunnels) show the
// IP header first: ppp_generic resets the mac header to the network header
// after pulling the 2-byte PPP protocol field.
func lookupLink(hatype uint16) (linkInfo, bool) {
	switch hatype {
	case arphrdEther:
		return linkInfo{"ethernet", 14}, true
	case arphrdLoopback:
		return linkInfo{"loopback", 14}, true
	case arphrdNone:
		return linkInfo{"none (raw IP)", 0}, true
	case arphrdRawIP:
		return linkInfo{"raw IP", 0}, true
	case arphrdPPP:
		return linkInfo{"ppp", 0}, true
	case arphrdTunnel:
		return linkInfo{"ipip tunnel", 0}, true
	case arphrdTunnel6:
		return linkInfo{"ip6 tunnel", 0}, true
	case arphrdSIT:
		return linkInfo{"sit tunnel", 0}, true
	}
	return linkInfo{}, false
}

// linkTypeName names an ARPHRD type for LinkType and hex dumps.
func linkTypeName(hatype uint16) string {
	if li, ok := lookupLink(hatype); ok {
		return li.name
	}
	return fmt.Sprintf("arphrd %d", hatype)
}

// linkHeaderLen returns the link header length to skip for a device of
// type hatype in mode m, given the configured length (negative = guess).
// In ModeNetwork and ModeSocket there is never a header to skip.
func linkHeaderLen(m Mode, hatype uint16, configured int) (int, error) {
	if m != ModeRaw {
		return 0, nil
	}
	if configured >= 0 {
		return configured, nil
	}
	if li, ok := lookupLink(hatype); ok && li.rawHdrLen >= 0 {
		return li.rawHdrLen, nil
	}
	return 0, fmt.Errorf("cannot guess the link header length of link type %s: set the link header length or use network mode", linkTypeName(hatype))
}
