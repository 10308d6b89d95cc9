//go:build linux

package netsim

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// readPcap returns the link type and frames of a pcap file.
func readPcap(t *testing.T, path string) (layers.LinkType, [][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("pcap %s: %v", path, err)
	}
	var frames [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			return r.LinkType(), frames
		}
		frames = append(frames, data)
	}
}

func TestIntegrationRecord(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	l, err := n.Link(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := n.TunLink(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stopEth, err := a.Record(l.A.Name, "eth.pcap")
	if err != nil {
		t.Fatal(err)
	}
	tunPath := filepath.Join(t.TempDir(), "tun.pcap")
	stopTun, err := b.Record(tl.B.Name, tunPath)
	if err != nil {
		t.Fatal(err)
	}
	reach(t, a, b, l.B.Addr4)
	reach(t, a, b, tl.B.Addr4)
	if err := stopEth(); err != nil {
		t.Fatal(err)
	}
	if err := stopTun(); err != nil {
		t.Fatal(err)
	}
	if err := stopEth(); err != nil { // idempotent
		t.Fatal(err)
	}

	cases := []struct {
		path string
		want layers.LinkType
		dst  netip.Addr
	}{
		{filepath.Join(n.artifacts, "eth.pcap"), layers.LinkTypeEthernet, l.B.Addr4},
		{tunPath, layers.LinkTypeRaw, tl.B.Addr4},
	}
	for _, c := range cases {
		lt, frames := readPcap(t, c.path)
		if lt != c.want {
			t.Errorf("%s: link type %v, want %v", c.path, lt, c.want)
		}
		found := false
		for _, f := range frames {
			p := gopacket.NewPacket(f, lt, gopacket.Default)
			ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if ip != nil && udp != nil && ip.DstIP.Equal(net.IP(c.dst.AsSlice())) && bytes.HasPrefix(udp.Payload, []byte("ping-")) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no UDP ping to %v among %d frames", c.path, c.dst, len(frames))
		}
	}
	if _, err := a.Record(l.A.Name, "/nonexistent-dir-\x00/x.pcap"); err == nil {
		t.Error("Record to an impossible path succeeded")
	}
}

// udp4Packet builds an IPv4/UDP packet with payload.
func udp4Packet(t *testing.T, src, dst netip.Addr, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 1001}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestIntegrationInjectTagged(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	plain, err := n.Link(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	relayed, err := n.Link(a, b, LinkOptions{Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const vid = 42
	for _, l := range []*Link{plain, relayed} {
		payload := []byte("dmsim-vlan-" + l.B.Name)
		stop, err := b.Record(l.B.Name, "vlan-"+l.B.Name+".pcap")
		if err != nil {
			t.Fatal(err)
		}
		if err := l.A.InjectTagged(vid, udp4Packet(t, l.A.Addr4, l.B.Addr4, payload)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // let the frame cross the relay
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		_, frames := readPcap(t, filepath.Join(n.artifacts, "vlan-"+l.B.Name+".pcap"))
		found := false
		for _, f := range frames {
			if len(f) > 18 && binary.BigEndian.Uint16(f[12:]) == EtherTypeDot1Q &&
				binary.BigEndian.Uint16(f[14:])&0x0fff == vid &&
				binary.BigEndian.Uint16(f[16:]) == EtherTypeIPv4 && bytes.Contains(f, payload) {
				found = true
			}
		}
		if !found {
			t.Errorf("relayed=%v: tagged frame with VLAN %d not seen among %d frames", l.Relayed, vid, len(frames))
		}
	}
	if err := plain.A.InjectTagged(MaxVID+1, udp4Packet(t, plain.A.Addr4, plain.B.Addr4, nil)); err == nil {
		t.Error("VLAN id 4095 accepted")
	}
	tl, err := n.TunLink(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.A.InjectTagged(1, udp4Packet(t, tl.A.Addr4, tl.B.Addr4, nil)); err == nil {
		t.Error("InjectTagged on a tun end succeeded")
	}
}
