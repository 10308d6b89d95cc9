//go:build linux

package capture

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/doorman-project/doorman/protocol"
)

// benchConn is a Conn without sockets whose frame handling can be driven
// from synthetic ring blocks.
func benchConn(local ...netip.Prefix) *Conn {
	c := &Conn{cfg: Config{Interface: vethB, KnockPort: testPort}, watch: &watcher{}}
	c.bind.Store(&binding{ifIndex: 2, hatype: arphrdEther, linkType: "ethernet"})
	c.watch.set.Store(newAddrSet(local, false, nil))
	return c
}

// BenchmarkRingFrames is the user-space cost per frame of a busy ring:
// parsing the frame header, decoding (with and without a software UDP
// checksum), the address checks, the payload copy, and
// protocol.ParseKnock, which a knock-shaped junk payload fails. The
// kernel's part (and waking up) is not in it; see TestIntegrationFigures
// for the whole.
func BenchmarkRingFrames(b *testing.B) {
	for _, bc := range []struct {
		name   string
		status uint32
	}{{"csum-offloaded", tpStatusCsumNotReady}, {"csum-in-software", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			// A stretch of ring, one frame per slot as the kernel fills it.
			const slots = 64
			mem := make([]byte, 0, slots*ringFrameSize)
			for i := range slots {
				payload := fmt.Appendf(nil, "9%0*d", protocol.MinClassicLen+i%30-1, i)
				mem = append(mem, buildFrame(ringFrameSize, testFrame{data: udp4(testSrc4, testDst4, uint16(40000+i), testPort, payload),
					status: bc.status, ifIndex: 2, proto: etherTypeIPv4, hatype: arphrdEther})...)
			}
			c := benchConn(netip.PrefixFrom(testDst4, 24))
			var (
				f    ringFrame
				p    Packet
				k    protocol.Knock
				good int
			)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				slot := i % slots
				if !parseFrame(mem[slot*ringFrameSize:(slot+1)*ringFrameSize], &f) {
					b.Fatal("frame refused")
				}
				if _, err := c.frame(&p, &f); err == nil {
					good++
					_ = protocol.ParseKnock(p.Payload, &k)
				}
			}
			if good != b.N {
				b.Fatalf("%d of %d frames delivered", good, b.N)
			}
		})
	}
}
