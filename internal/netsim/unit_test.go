//go:build linux

package netsim

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestSubnetAt(t *testing.T) {
	for _, c := range []struct {
		i      int
		p4, p6 string
	}{
		{1, "198.18.1.0/24", "2001:db8:0:1::/64"},
		{255, "198.18.255.0/24", "2001:db8:0:ff::/64"},
		{256, "198.19.0.0/24", "2001:db8:0:100::/64"},
		{511, "198.19.255.0/24", "2001:db8:0:1ff::/64"},
	} {
		s := subnetAt(c.i)
		if s.p4.String() != c.p4 || s.p6.String() != c.p6 {
			t.Errorf("subnetAt(%d) = %v %v, want %s %s", c.i, s.p4, s.p6, c.p4, c.p6)
		}
	}
	s := subnetAt(7)
	for want := 1; want <= 254; want++ {
		p4, p6, err := s.alloc()
		if err != nil {
			t.Fatal(err)
		}
		if int(p4.Addr().As4()[3]) != want || p4.Bits() != 24 || p6.Addr().As16()[15] != byte(want) || p6.Bits() != 64 {
			t.Fatalf("alloc %d = %v %v", want, p4, p6)
		}
		if !netip.MustParsePrefix("198.18.0.0/15").Contains(p4.Addr()) || !netip.MustParsePrefix("2001:db8::/32").Contains(p6.Addr()) {
			t.Fatalf("address outside the allowed ranges: %v %v", p4, p6)
		}
	}
	if _, _, err := s.alloc(); !errors.Is(err, ErrAddressSpace) {
		t.Errorf("255th alloc: %v, want ErrAddressSpace", err)
	}
}

func TestNewRejectsBadPrefix(t *testing.T) {
	for _, p := range []string{"Dmsim", "dm-sim", "1dm", "averyveryverylongprefix", "dm/../x"} {
		if _, err := New(context.Background(), Options{Prefix: p}); !errors.Is(err, ErrBadName) {
			t.Errorf("New(prefix %q) = %v, want ErrBadName", p, err)
		}
	}
}

func TestValidIfName(t *testing.T) {
	for _, name := range []string{"a", "dmcf0", "eth0.100", "wg_ext-1", "abcdefghijklmno"} {
		if !ValidIfName(name) {
			t.Errorf("ValidIfName(%q) = false, want true", name)
		}
	}
	// Too long for the kernel (15 characters at most), empty, path or
	// shell characters, or not starting with a letter.
	for _, name := range []string{"", "abcdefghijklmnop", "0eth", "-x", ".", "a/b", "a b", "eth0:1", "ä"} {
		if ValidIfName(name) {
			t.Errorf("ValidIfName(%q) = true, want false", name)
		}
	}
}

func TestTaggedFrame(t *testing.T) {
	dst := net.HardwareAddr{1, 2, 3, 4, 5, 6}
	src := net.HardwareAddr{7, 8, 9, 10, 11, 12}
	f := TaggedFrame(dst, src, 0x1abc, EtherTypeIPv6, []byte{0x60, 0})
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0x0a, 0xbc, 0x86, 0xdd, 0x60, 0}
	// Padded to Ethernet's minimum frame of 60 bytes (without the FCS).
	if !bytes.HasPrefix(f, want) || len(f) != 60 || !bytes.Equal(f[len(want):], make([]byte, 60-len(want))) {
		t.Errorf("TaggedFrame = % x, want % x and zeros to 60 bytes", f, want)
	}
	if f := TaggedFrame(nil, nil, 1, EtherTypeIPv4, nil); len(f) != 60 || !bytes.Equal(f[12:18], []byte{0x81, 0, 0, 1, 8, 0}) {
		t.Errorf("short addresses: % x", f)
	}
	long := bytes.Repeat([]byte{0xee}, 100)
	if f := TaggedFrame(dst, src, 7, EtherTypeIPv4, long); len(f) != 118 || !bytes.Equal(f[18:], long) {
		t.Errorf("a long payload is not carried as is: % x", f)
	}
}

func TestInsertTag(t *testing.T) {
	frame := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45}
	got := insertTag(frame, EtherTypeDot1Q, 42)
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0, 0, 42, 0x08, 0x00, 0x45}
	if !bytes.Equal(got, want) {
		t.Errorf("insertTag = % x, want % x", got, want)
	}
	if short := insertTag([]byte{1, 2}, 1, 2); len(short) != 2 {
		t.Errorf("short frame changed: % x", short)
	}
}

// auxdataCmsg builds a PACKET_AUXDATA control message as the kernel sends it.
func auxdataCmsg(status uint32, tci, tpid uint16) []byte {
	data := make([]byte, auxdataLen)
	binary.NativeEndian.PutUint32(data, status)
	binary.NativeEndian.PutUint16(data[auxdataTCIOff:], tci)
	binary.NativeEndian.PutUint16(data[auxdataTPIDOff:], tpid)
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func TestVLANFromControl(t *testing.T) {
	for _, c := range []struct {
		name      string
		oob       []byte
		tci, tpid uint16
		ok        bool
	}{
		{"none", nil, 0, 0, false},
		{"no vlan", auxdataCmsg(unix.TP_STATUS_USER, 0, 0), 0, 0, false},
		{"vlan", auxdataCmsg(unix.TP_STATUS_VLAN_VALID, 42, 0), 42, EtherTypeDot1Q, true},
		{"vlan tpid", auxdataCmsg(unix.TP_STATUS_VLAN_VALID|unix.TP_STATUS_VLAN_TPID_VALID, 7, 0x88a8), 7, 0x88a8, true},
		{"garbage", []byte{1, 2, 3}, 0, 0, false},
	} {
		tci, tpid, ok := vlanFromControl(c.oob)
		if tci != c.tci || tpid != c.tpid || ok != c.ok {
			t.Errorf("%s: got %d %#x %v, want %d %#x %v", c.name, tci, tpid, ok, c.tci, c.tpid, c.ok)
		}
	}
}

func FuzzVLANFromControl(f *testing.F) {
	f.Add([]byte{})
	f.Add(auxdataCmsg(unix.TP_STATUS_VLAN_VALID, 42, 0))
	f.Add(auxdataCmsg(unix.TP_STATUS_VLAN_VALID|unix.TP_STATUS_VLAN_TPID_VALID, 7, 0x88a8))
	f.Add(auxdataCmsg(0, 0, 0)[:10])
	f.Fuzz(func(t *testing.T, oob []byte) {
		tci, tpid, ok := vlanFromControl(oob)
		if !ok && (tci != 0 || tpid != 0) {
			t.Fatalf("not ok but %d %d", tci, tpid)
		}
		frame := append(bytes.Repeat([]byte{0xaa}, 12), oob...)
		if ok {
			got := insertTag(frame, tpid, tci)
			if len(got) != len(frame)+dot1QLen || binary.BigEndian.Uint16(got[12:]) != tpid {
				t.Fatalf("insertTag broke the frame: % x", got)
			}
		}
	})
}

func TestSchedQueue(t *testing.T) {
	q := &schedQueue{max: 3, wake: make(chan struct{}, 1)}
	t0 := time.Unix(1000, 0)
	q.push(t0.Add(2*time.Millisecond), []byte("late"))
	q.push(t0, []byte("first"))
	q.push(t0, []byte("second")) // same due time: arrival order
	if q.push(t0, []byte("overflow")) {
		t.Error("push beyond max accepted")
	}
	if _, wait, ok := q.popDue(t0.Add(-time.Millisecond)); ok || wait != time.Millisecond {
		t.Errorf("early pop: ok=%v wait=%v", ok, wait)
	}
	var got []string
	for {
		f, _, ok := q.popDue(t0.Add(time.Second))
		if !ok {
			break
		}
		got = append(got, string(f))
	}
	if want := []string{"first", "second", "late"}; !equalStrings(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if _, wait, ok := q.popDue(t0); ok || wait != 0 {
		t.Errorf("empty pop: ok=%v wait=%v", ok, wait)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSolicitedNode(t *testing.T) {
	got := solicitedNode(netip.MustParseAddr("2001:db8:0:1::abcd:ef12"))
	if want := "ff0200000000000000000001ffcdef12"; got != want {
		t.Errorf("solicitedNode = %s, want %s", got, want)
	}
}

func TestIsRunNamespace(t *testing.T) {
	if !isRunNamespace("dmsim-0123abcd-host", "dmsim-0123abcd") || isRunNamespace("dmsim-0123abcde-host", "dmsim-0123abcd") {
		t.Error("isRunNamespace wrong")
	}
}
