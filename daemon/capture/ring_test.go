package capture

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// testFrame is one frame for buildFrame.
type testFrame struct {
	data    []byte
	status  uint32
	ifIndex int32
	proto   uint16
	hatype  uint16
	pktType uint8
	mac     int // offset of data in the frame; 0 means the kernel's 80
}

// testFrameSize is the frame size of the tests: the kernel's.
const testFrameSize = 512

// buildFrame lays f out in a frame slot of size bytes as the kernel does
// for TPACKET_V2 (a tpacket2_hdr, a sockaddr_ll, the data at tp_mac).
func buildFrame(size int, f testFrame) []byte {
	b := make([]byte, size)
	ne := binary.NativeEndian
	mac := f.mac
	if mac == 0 {
		mac = 80
	}
	ne.PutUint32(b[tp2StatusOff:], f.status|1) // TP_STATUS_USER
	ne.PutUint32(b[tp2LenOff:], uint32(len(f.data)))
	ne.PutUint32(b[tp2SnaplenOff:], uint32(len(f.data)))
	ne.PutUint16(b[tp2MacOff:], uint16(mac))
	ne.PutUint16(b[tp2VlanTCIOff:], 100)
	sll := b[tp2HdrLen:]
	binary.BigEndian.PutUint16(sll[sllProtocolOff:], f.proto)
	ne.PutUint32(sll[sllIfIndexOff:], uint32(f.ifIndex))
	ne.PutUint16(sll[sllHatypeOff:], f.hatype)
	sll[sllPkttypeOff] = f.pktType
	copy(b[mac:], f.data)
	return b
}

func TestParseFrame(t *testing.T) {
	frames := []testFrame{
		{data: udp4(testSrc4, testDst4, 1, testPort, testKnock), status: tpStatusCsumValid, ifIndex: 2, proto: etherTypeIPv4, hatype: arphrdEther},
		{data: udp6(testSrc6, testDst6, 1, testPort, testKnock), ifIndex: 3, proto: etherTypeIPv6, hatype: arphrdLoopback, pktType: 4},
		{data: []byte{1, 2, 3}, mac: 66},
		{data: make([]byte, testFrameSize-80)}, // fills the slot
	}
	for i, want := range frames {
		fr := buildFrame(testFrameSize, want)
		var f ringFrame
		if !parseFrame(fr, &f) {
			t.Fatalf("frame %d: refused", i)
		}
		if !bytes.Equal(f.data, want.data) || f.wireLen != uint32(len(want.data)) || f.status != want.status|1 ||
			f.ifIndex != want.ifIndex || f.proto != want.proto || f.hatype != want.hatype || f.pktType != want.pktType || f.vlanTCI != 100 {
			t.Errorf("frame %d = %+v, want %+v", i, f, want)
		}
		if cap(f.data) != len(f.data) {
			t.Errorf("frame %d: data can grow into the rest of the slot", i)
		}
	}
	fr := buildFrame(testFrameSize, frames[0])
	var f ringFrame
	if n := testing.AllocsPerRun(100, func() { parseFrame(fr, &f) }); n != 0 {
		t.Errorf("parsing a frame allocates %v times", n)
	}

	// A corrupt header is refused, never reaches outside the slot.
	ne := binary.NativeEndian
	for _, tc := range []struct {
		name   string
		mangle func(b []byte)
	}{
		{"snaplen beyond the slot", func(b []byte) { ne.PutUint32(b[tp2SnaplenOff:], 1<<30) }},
		{"snaplen one byte too long", func(b []byte) { ne.PutUint32(b[tp2SnaplenOff:], testFrameSize-80+1) }},
		{"mac inside the header", func(b []byte) { ne.PutUint16(b[tp2MacOff:], 10) }},
		{"mac beyond the slot", func(b []byte) { ne.PutUint16(b[tp2MacOff:], 60000) }},
	} {
		b := buildFrame(testFrameSize, frames[0])
		tc.mangle(b)
		before := f
		if parseFrame(b, &f) {
			t.Errorf("%s: accepted", tc.name)
		}
		if !bytes.Equal(f.data, before.data) {
			t.Errorf("%s: the frame was changed", tc.name)
		}
	}
	if parseFrame(make([]byte, tp2HdrLen+sllLen-1), &f) {
		t.Error("a slot shorter than the headers has a frame")
	}
}

// FuzzParseFrame: on any slot contents parseFrame never panics and the
// data it delivers lies inside the slot.
func FuzzParseFrame(f *testing.F) {
	f.Add(buildFrame(testFrameSize, testFrame{data: udp4(testSrc4, testDst4, 1, testPort, testKnock)}))
	f.Add(buildFrame(128, testFrame{data: []byte("x")}))
	f.Add(make([]byte, 52))
	f.Fuzz(func(t *testing.T, slot []byte) {
		var fr ringFrame
		if parseFrame(slot, &fr) && len(fr.data) > 0 && !inside(slot, fr.data) {
			t.Fatal("frame data outside the slot")
		}
	})
}

// inside reports whether sub is a subslice of b.
func inside(b, sub []byte) bool {
	if len(sub) == 0 {
		return true
	}
	for i := 0; i+len(sub) <= len(b); i++ {
		if &b[i] == &sub[0] {
			return true
		}
	}
	return false
}

// TestWakePacer: the first wakeBurst sleeps come at once, then one per
// wakeInterval, and an idle spell restores the burst.
func TestWakePacer(t *testing.T) {
	var p wakePacer
	now := time.Unix(1000, 0)
	for i := range wakeBurst {
		if d := p.next(now); d != 0 {
			t.Fatalf("sleep %d of a burst: pause %v, want none", i+1, d)
		}
	}
	// Sustained: each sleep right after the last pause ended.
	for i := range 100 {
		d := p.next(now)
		if d <= 0 || d > wakeInterval {
			t.Fatalf("sustained sleep %d: pause %v, want (0, %v]", i, d, wakeInterval)
		}
		now = now.Add(d + time.Microsecond)
	}
	// At most one sleep per wakeInterval on average over the sustained run.
	start := time.Unix(1000, 0)
	if got, least := now.Sub(start), time.Duration(100-wakeBurst)*wakeInterval; got < least {
		t.Errorf("100 sustained sleeps took %v, want at least %v", got, least)
	}
	// Idle for a while: the burst is back.
	now = now.Add(time.Duration(wakeBurst+1) * wakeInterval)
	for i := range wakeBurst {
		if d := p.next(now); d != 0 {
			t.Fatalf("sleep %d after an idle spell: pause %v, want none", i+1, d)
		}
	}
	// Sparse sleeps, one per interval or slower, never pause.
	for i := range 50 {
		now = now.Add(wakeInterval)
		if d := p.next(now); d > 0 && i > wakeBurst {
			t.Fatalf("sparse sleep %d: pause %v", i, d)
		}
	}
}

// TestRingGeometry: the frames fit the longest candidate behind the
// headers the kernel puts before it, lie inside their blocks as the kernel
// lays them out, and the cursor walks them in order and wraps around.
func TestRingGeometry(t *testing.T) {
	align := func(n int) int { return (n + 15) &^ 15 } // TPACKET_ALIGN
	longest := 40 + 8 + maxPayload                     // IPv6, UDP, payload
	if need := align(tp2HdrLen+sllLen+16) + longest; cookedFrameSize < need {
		t.Errorf("cooked frames of %d bytes, need %d", cookedFrameSize, need)
	}
	if need := align(tp2HdrLen+sllLen+128) + longest; rawFrameSize < need {
		t.Errorf("raw frames of %d bytes, need %d behind a 128-byte link header", rawFrameSize, need)
	}
	for _, size := range []int{cookedFrameSize, rawFrameSize} {
		if size%16 != 0 {
			t.Errorf("frame size %d is not a multiple of TPACKET_ALIGNMENT", size)
		}
		g := newRingGeometry(size)
		if g.frames*size > ringBlocks*ringBlockSize || g.perBlock != ringBlockSize/size {
			t.Fatalf("geometry %+v", g)
		}
		var c ringCursor
		for i := range g.frames + 3 {
			want := i % g.frames
			if c.i != want || c.off != g.offset(want) || c.slot != want%g.perBlock {
				t.Fatalf("size %d, step %d: cursor %+v, want frame %d at %d", size, i, c, want, g.offset(want))
			}
			if blk := c.off / ringBlockSize; (c.off+size-1)/ringBlockSize != blk {
				t.Fatalf("size %d: frame %d at %d crosses a block boundary", size, c.i, c.off)
			}
			g.advance(&c)
		}
	}
}
