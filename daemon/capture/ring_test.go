package capture

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// testFrame is one frame for buildBlock.
type testFrame struct {
	data    []byte
	status  uint32
	ifIndex int32
	proto   uint16
	hatype  uint16
	pktType uint8
	mac     int // offset of data in the frame; 0 means the kernel's 96
}

// buildBlock lays frames out in a block of size bytes as the kernel does
// for TPACKET_V3 (a block descriptor, then 16-byte aligned frames).
func buildBlock(size int, frames []testFrame) []byte {
	b := make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], 3) // version
	ne.PutUint32(b[blockStatusOff:], 1)
	ne.PutUint32(b[blockNumOff:], uint32(len(frames)))
	ne.PutUint32(b[blockFirstOff:], blockDescLen)
	off := blockDescLen
	for _, f := range frames {
		mac := f.mac
		if mac == 0 {
			mac = 96
		}
		h := b[off:]
		ne.PutUint32(h[tp3SnaplenOff:], uint32(len(f.data)))
		ne.PutUint32(h[tp3LenOff:], uint32(len(f.data)))
		ne.PutUint32(h[tp3StatusOff:], f.status)
		ne.PutUint16(h[tp3MacOff:], uint16(mac))
		ne.PutUint32(h[tp3VlanTCIOff:], 100)
		sll := h[tp3HdrLen:]
		binary.BigEndian.PutUint16(sll[sllProtocolOff:], f.proto)
		ne.PutUint32(sll[sllIfIndexOff:], uint32(f.ifIndex))
		ne.PutUint16(sll[sllHatypeOff:], f.hatype)
		sll[sllPkttypeOff] = f.pktType
		copy(h[mac:], f.data)
		next := (mac + len(f.data) + 15) &^ 15
		ne.PutUint32(h[tp3NextOff:], uint32(next))
		off += next
	}
	return b
}

func TestBlockWalker(t *testing.T) {
	frames := []testFrame{
		{data: udp4(testSrc4, testDst4, 1, testPort, testKnock), status: tpStatusCsumValid, ifIndex: 2, proto: etherTypeIPv4, hatype: arphrdEther},
		{data: udp6(testSrc6, testDst6, 1, testPort, testKnock), ifIndex: 3, proto: etherTypeIPv6, hatype: arphrdLoopback, pktType: 4},
		{data: []byte{1, 2, 3}, mac: 82},
	}
	blk := buildBlock(4096, frames)
	var w blockWalker
	w.reset(blk)
	for i, want := range frames {
		var f ringFrame
		ok, bad := w.next(&f)
		if !ok || bad {
			t.Fatalf("frame %d: ok %v bad %v", i, ok, bad)
		}
		if !bytes.Equal(f.data, want.data) || f.wireLen != uint32(len(want.data)) || f.status != want.status ||
			f.ifIndex != want.ifIndex || f.proto != want.proto || f.hatype != want.hatype || f.pktType != want.pktType || f.vlanTCI != 100 {
			t.Errorf("frame %d = %+v, want %+v", i, f, want)
		}
		if cap(f.data) != len(f.data) {
			t.Errorf("frame %d: data can grow into the next frame", i)
		}
	}
	var f ringFrame
	if ok, bad := w.next(&f); ok || bad {
		t.Errorf("after the last frame: ok %v bad %v", ok, bad)
	}
	if n := testing.AllocsPerRun(100, func() {
		w.reset(blk)
		for ok, _ := w.next(&f); ok; ok, _ = w.next(&f) {
		}
	}); n != 0 {
		t.Errorf("walking a block allocates %v times", n)
	}

	// Corrupt blocks end the walk, never reach outside the block.
	ne := binary.NativeEndian
	for _, tc := range []struct {
		name   string
		mangle func(b []byte)
		frames int // frames still delivered
	}{
		{"first frame beyond the block", func(b []byte) { ne.PutUint32(b[blockFirstOff:], 4090) }, 0},
		{"first frame inside the descriptor", func(b []byte) { ne.PutUint32(b[blockFirstOff:], 8) }, 0},
		{"snaplen beyond the block", func(b []byte) { ne.PutUint32(b[blockDescLen+tp3SnaplenOff:], 1<<30) }, 0},
		{"mac inside the header", func(b []byte) { ne.PutUint16(b[blockDescLen+tp3MacOff:], 10) }, 0},
		{"next frame beyond the block", func(b []byte) { ne.PutUint32(b[blockDescLen+tp3NextOff:], 1<<20) }, 1},
		{"next frame offset 0", func(b []byte) { ne.PutUint32(b[blockDescLen+tp3NextOff:], 0) }, 1},
		{"more frames counted than laid out", func(b []byte) { ne.PutUint32(b[blockNumOff:], 1000) }, 3},
	} {
		b := buildBlock(4096, frames)
		tc.mangle(b)
		w.reset(b)
		n, sawBad := 0, false
		for range 2000 {
			ok, bad := w.next(&f)
			sawBad = sawBad || bad
			if !ok {
				break
			}
			n++
		}
		if n < tc.frames || n > tc.frames+1 || !sawBad && tc.name != "more frames counted than laid out" {
			t.Errorf("%s: %d frames, bad %v; want %d frames and bad", tc.name, n, sawBad, tc.frames)
		}
	}
	w.reset(make([]byte, 10)) // shorter than a descriptor
	if ok, _ := w.next(&f); ok {
		t.Error("a 10-byte block has a frame")
	}
}

// FuzzBlockWalker: on any block contents the walker never panics, never
// loops forever and every frame it delivers lies inside the block.
func FuzzBlockWalker(f *testing.F) {
	f.Add(buildBlock(1024, []testFrame{{data: udp4(testSrc4, testDst4, 1, testPort, testKnock)}, {data: []byte("x")}}))
	f.Add(buildBlock(256, nil))
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, blk []byte) {
		var w blockWalker
		w.reset(blk)
		var fr ringFrame
		for i := 0; ; i++ {
			ok, _ := w.next(&fr)
			if !ok {
				break
			}
			if i > len(blk)/(tp3HdrLen+sllLen) {
				t.Fatalf("%d frames from a %d-byte block", i+1, len(blk))
			}
			if len(fr.data) > 0 && !inside(blk, fr.data) {
				t.Fatal("frame data outside the block")
			}
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
