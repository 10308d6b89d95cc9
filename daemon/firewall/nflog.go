package firewall

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// The claim rule reports each claiming SYN on a netfilter log group
// (nfnetlink_log). These are the parts of that interface the backend uses,
// from linux/netfilter/nfnetlink_log.h (golang.org/x/sys/unix lacks them).
const (
	nfulnlMsgPacket = 0 // NFULNL_MSG_PACKET
	nfulnlMsgConfig = 1 // NFULNL_MSG_CONFIG

	nfulaCfgCmd     = 1 // NFULA_CFG_CMD
	nfulaCfgMode    = 2 // NFULA_CFG_MODE
	nfulaCfgTimeout = 4 // NFULA_CFG_TIMEOUT: flush timeout, in 1/100 s
	nfulaCfgQThresh = 5 // NFULA_CFG_QTHRESH: messages per batch

	nfulnlCfgCmdBind = 1 // NFULNL_CFG_CMD_BIND
	nfulnlCopyPacket = 2 // NFULNL_COPY_PACKET

	nfulaPayload = 9  // NFULA_PAYLOAD: the packet from its network header
	nfulaPrefix  = 10 // NFULA_PREFIX: the rule's log prefix, NUL-terminated

	// nfgenmsgLen is struct nfgenmsg: family, version, resource id.
	nfgenmsgLen = 4
)

// What the claim rule logs: the prefix tells its messages from anything
// else on the group, and the snap length covers an IPv6 header with a few
// extension headers and the TCP ports.
const (
	nflogPrefix  = "doorman claim"
	nflogSnaplen = 128
)

// Errors of parseNFLogPacket.
var (
	errNFLogShort    = errors.New("nflog: message too short")
	errNFLogNoPacket = errors.New("nflog: no payload attribute")
	errNFLogPrefix   = errors.New("nflog: not a doorman claim")
	errNFLogNotTCP   = errors.New("nflog: payload is not a TCP segment of IPv4 or IPv6")
)

// parseNFLogPacket reads one NFULNL_MSG_PACKET body (after the netlink
// header) and returns the claim it reports. It never panics.
func parseNFLogPacket(data []byte) (Claim, error) {
	if len(data) < nfgenmsgLen {
		return Claim{}, errNFLogShort
	}
	var payload, prefix []byte
	for b := data[nfgenmsgLen:]; len(b) >= 4; {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ 0xc000 // NLA_F_NESTED | NLA_F_NET_BYTEORDER
		if l < 4 || l > len(b) {
			return Claim{}, errNFLogShort
		}
		switch typ {
		case nfulaPayload:
			payload = b[4:l]
		case nfulaPrefix:
			prefix = b[4:l]
		}
		next := (l + 3) &^ 3
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	if n := len(prefix); n > 0 && prefix[n-1] == 0 {
		prefix = prefix[:n-1]
	}
	if string(prefix) != nflogPrefix {
		return Claim{}, errNFLogPrefix
	}
	if payload == nil {
		return Claim{}, errNFLogNoPacket
	}
	return parseClaimPacket(payload)
}

// parseClaimPacket reads addresses and ports of a TCP segment from its
// network header on.
func parseClaimPacket(p []byte) (Claim, error) {
	if len(p) < 1 {
		return Claim{}, errNFLogNotTCP
	}
	var c Claim
	var l4 []byte
	switch p[0] >> 4 {
	case 4:
		if len(p) < 20 {
			return Claim{}, errNFLogNotTCP
		}
		ihl := int(p[0]&0x0f) * 4
		if ihl < 20 || len(p) < ihl+4 || p[9] != 6 {
			return Claim{}, errNFLogNotTCP
		}
		c.Src = netip.AddrFrom4([4]byte(p[12:16]))
		c.Dst = netip.AddrFrom4([4]byte(p[16:20]))
		l4 = p[ihl:]
	case 6:
		if len(p) < 40 {
			return Claim{}, errNFLogNotTCP
		}
		c.Src = netip.AddrFrom16([16]byte(p[8:24]))
		c.Dst = netip.AddrFrom16([16]byte(p[24:40]))
		next, off := p[6], 40
		// Walk the extension headers nftables would have skipped.
		for hops := 0; next != 6; hops++ {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
			default:
				return Claim{}, errNFLogNotTCP
			}
			if hops > 8 || len(p) < off+2 {
				return Claim{}, errNFLogNotTCP
			}
			next, off = p[off], off+(int(p[off+1])+1)*8
		}
		if len(p) < off+4 {
			return Claim{}, errNFLogNotTCP
		}
		l4 = p[off:]
	default:
		return Claim{}, errNFLogNotTCP
	}
	c.SrcPort = binary.BigEndian.Uint16(l4[0:2])
	c.Port = binary.BigEndian.Uint16(l4[2:4])
	return c, nil
}
