//go:build linux

package capture

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/doorman-project/doorman/protocol"
	"golang.org/x/sys/unix"
)

// benchConn is a Conn without sockets whose frame handling can be driven
// from synthetic ring blocks.
func benchConn(local ...netip.Prefix) *Conn {
	c := &Conn{cfg: Config{Interface: "eth0", KnockPort: testPort}, watch: &watcher{}}
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
			mem := make([]byte, 0, slots*cookedFrameSize)
			for i := range slots {
				payload := fmt.Appendf(nil, "9%0*d", protocol.MinClassicLen+i%30-1, i)
				mem = append(mem, buildFrame(cookedFrameSize, testFrame{data: udp4(testSrc4, testDst4, uint16(40000+i), testPort, payload),
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
				if !parseFrame(mem[slot*cookedFrameSize:(slot+1)*cookedFrameSize], &f) {
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

// BenchmarkIntegrationRingRead is Read's cost per frame on a ring the
// kernel filled: knock-shaped datagrams are injected on the veth while the
// reader waits (untimed), then read back to back. It covers what
// BenchmarkRingFrames leaves out: the frames' memory as the kernel wrote
// it, the ring's status words and Read itself; not the wakeups (see
// TestIntegrationFigures).
func BenchmarkIntegrationRingRead(b *testing.B) {
	n := newTestNet(b)
	c := open(b, n.b, Config{Interface: n.ifB(), KnockPort: testPort})
	frames := make([][]byte, 64)
	for i := range frames {
		payload := fmt.Appendf(nil, "9%0*d", protocol.MinClassicLen+i%30-1, i)
		frames[i] = n.frameToB(udp4(n.a4, n.b4, uint16(40000+i), testPort, payload))
	}
	var fd int
	must(b, "packet socket", n.a.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	}))
	defer unix.Close(fd)
	sll := &unix.SockaddrLinklayer{Ifindex: n.link.A.IfIndex, Halen: 6}
	copy(sll.Addr[:], n.link.B.MAC)

	batch := c.ring.geo.frames / 2
	var p Packet
	b.ReportAllocs()
	b.ResetTimer()
	for read := 0; read < b.N; {
		m := min(batch, b.N-read)
		b.StopTimer()
		last := c.ring.geo.offset((c.ring.cur.i + m - 1) % c.ring.geo.frames)
		for i := range m {
			must(b, "inject", unix.Sendto(fd, frames[i%len(frames)], 0, sll))
		}
		for deadline := time.Now().Add(opTimeout); ; time.Sleep(100 * time.Microsecond) {
			st := atomic.LoadUint32((*uint32)(unsafe.Pointer(&c.ring.mem[last+tp2StatusOff])))
			if st&unix.TP_STATUS_USER != 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d injected frames did not all reach the ring", m)
			}
		}
		b.StartTimer()
		for range m {
			if err := c.Read(&p); err != nil {
				b.Fatalf("Read: %v", err)
			}
		}
		read += m
	}
}
