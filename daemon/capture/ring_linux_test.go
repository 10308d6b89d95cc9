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

// BenchmarkRingFrames is the user-space cost per frame of a full ring
// block: walking it, decoding (with and without a software UDP checksum),
// the address checks, the payload copy, and protocol.ParseKnock, which a
// knock-shaped junk payload fails. The kernel's part (and waking up once
// per block) is not in it; see TestIntegrationFigures for the whole.
func BenchmarkRingFrames(b *testing.B) {
	for _, bc := range []struct {
		name   string
		status uint32
	}{{"csum-offloaded", tpStatusCsumNotReady}, {"csum-in-software", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			var frames []testFrame
			for i, used := 0, blockDescLen; ; i++ { // a block's worth, as the kernel fills it
				payload := fmt.Appendf(nil, "9%0*d", protocol.MinClassicLen+i%30-1, i)
				f := testFrame{data: udp4(testSrc4, testDst4, uint16(40000+i), testPort, payload),
					status: bc.status, ifIndex: 2, proto: etherTypeIPv4, hatype: arphrdEther}
				if used += (96 + len(f.data) + 15) &^ 15; used > ringBlockSize {
					break
				}
				frames = append(frames, f)
			}
			blk := buildBlock(ringBlockSize, frames)
			c := benchConn(netip.PrefixFrom(testDst4, 24))
			var (
				w    blockWalker
				f    ringFrame
				p    Packet
				k    protocol.Knock
				good int
			)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				w.reset(blk)
				for ok, _ := w.next(&f); ok && i < b.N; ok, _ = w.next(&f) {
					if _, err := c.frame(&p, &f); err == nil {
						good++
						_ = protocol.ParseKnock(p.Payload, &k)
					}
					i++
				}
			}
			if good != b.N {
				b.Fatalf("%d of %d frames delivered", good, b.N)
			}
		})
	}
}
