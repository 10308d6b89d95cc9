package capture

import "encoding/binary"

// Layout of a TPACKET_V2 receive ring (linux/if_packet.h). The ring is an
// array of fixed-size frames. The kernel writes each packet into the next
// frame it owns (tp_status TP_STATUS_KERNEL) and hands that frame over at
// once by setting TP_STATUS_USER; user space reads it and hands it back.
// Unlike TPACKET_V3, whose blocks reach user space only when full or when
// a retire timeout of at least a millisecond expires, nothing waits for
// more packets. Fields are in host byte order.
const (
	// struct tpacket2_hdr.
	tp2StatusOff  = 0  // tp_status
	tp2LenOff     = 4  // tp_len
	tp2SnaplenOff = 8  // tp_snaplen
	tp2MacOff     = 12 // tp_mac
	tp2VlanTCIOff = 24 // tp_vlan_tci (16 bits)
	tp2HdrLen     = 32 // TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): the sockaddr_ll follows

	// struct sockaddr_ll, right after the tpacket2_hdr.
	sllProtocolOff = 2 // sll_protocol, network byte order
	sllIfIndexOff  = 4
	sllHatypeOff   = 8
	sllPkttypeOff  = 10
	sllLen         = 20
)

// ringFrame is one frame of the ring, as the kernel describes it.
type ringFrame struct {
	// data is what was captured, from the link header (SOCK_RAW) or the
	// network header (SOCK_DGRAM). It aliases the ring.
	data    []byte
	wireLen uint32 // tp_len: the frame's length on the wire
	status  uint32 // tp_status: TP_STATUS_* bits
	vlanTCI uint32 // valid with tpStatusVLANValid
	ifIndex int32
	proto   uint16 // EtherType, host order
	hatype  uint16 // ARPHRD type of the device
	pktType uint8
}

// parseFrame fills f from fr, one frame slot of the ring handed to user
// space. It trusts nothing in the slot: it reports false, and leaves f
// alone, when the header would place the data outside the slot. It does
// not allocate.
func parseFrame(fr []byte, f *ringFrame) bool {
	if len(fr) < tp2HdrLen+sllLen {
		return false
	}
	snap := int(binary.NativeEndian.Uint32(fr[tp2SnaplenOff:]))
	mac := int(binary.NativeEndian.Uint16(fr[tp2MacOff:]))
	if mac < tp2HdrLen+sllLen || mac > len(fr) || snap > len(fr)-mac {
		return false
	}
	sll := fr[tp2HdrLen:]
	*f = ringFrame{
		data:    fr[mac : mac+snap : mac+snap],
		wireLen: binary.NativeEndian.Uint32(fr[tp2LenOff:]),
		status:  binary.NativeEndian.Uint32(fr[tp2StatusOff:]),
		vlanTCI: uint32(binary.NativeEndian.Uint16(fr[tp2VlanTCIOff:])),
		ifIndex: int32(binary.NativeEndian.Uint32(sll[sllIfIndexOff:])),
		proto:   binary.BigEndian.Uint16(sll[sllProtocolOff:]),
		hatype:  binary.NativeEndian.Uint16(sll[sllHatypeOff:]),
		pktType: sll[sllPkttypeOff],
	}
	return true
}
