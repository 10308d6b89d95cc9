//go:build linux

package capture

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/doorman-project/doorman/protocol"
	"golang.org/x/sys/unix"
)

// Figures for the issue "Performance at the physical limit". They are
// printed, not asserted (timing depends on the machine and its load):
//
//	go test -run Figures -v ./daemon/capture/
//
// DOORMAN_FLOOD_COUNT (default 50000) sets the datagrams per flood, and
// DOORMAN_FLOOD_PPS paces the sender (default: as fast as it can).
const (
	floodEnv      = "DOORMAN_FLOOD"       // set in the sender child: destination,kind,count,pps
	floodCountEnv = "DOORMAN_FLOOD_COUNT" // datagrams per flood
	floodPPSEnv   = "DOORMAN_FLOOD_PPS"   // datagrams per second, 0 for as fast as possible
	floodLimit    = 5 * time.Second       // longest a flood runs
)

// TestIntegrationFigures prints the delay of an idle knock and the CPU time
// per junk datagram under a flood, for the ring and the UDP socket, and
// for a full ring drained at once.
func TestIntegrationFigures(t *testing.T) {
	n := newTestNet(t)
	t.Run("idle knock delay", func(t *testing.T) {
		for _, mode := range []Mode{ModeNetwork, ModeSocket} {
			idleDelay(t, n, mode)
		}
	})
	count, pps := 50000, 0
	if s := os.Getenv(floodCountEnv); s != "" {
		var err error
		if count, err = strconv.Atoi(s); err != nil || count <= 0 || count > 10_000_000 {
			t.Fatalf("%s=%q: want a count up to 10000000", floodCountEnv, s)
		}
	}
	if s := os.Getenv(floodPPSEnv); s != "" {
		var err error
		if pps, err = strconv.Atoi(s); err != nil || pps < 0 {
			t.Fatalf("%s=%q: want datagrams per second", floodPPSEnv, s)
		}
	}
	t.Run("flood", func(t *testing.T) {
		for _, tc := range []struct {
			mode Mode
			kind string
		}{
			{ModeNetwork, "knock-shaped"},
			{ModeNetwork, "junk"},
			{ModeSocket, "knock-shaped"},
		} {
			flood(t, n, tc.mode, tc.kind, count, pps)
		}
	})
	t.Run("drain", func(t *testing.T) { drainRing(t, n) })
}

// idleDelay sends knocks one at a time, with pauses, and prints how long
// each took from the sender's write to Read's return.
func idleDelay(t *testing.T, n *testNet, mode Mode) {
	c := open(t, n.b, Config{Interface: n.ifB(), Mode: mode, KnockPort: testPort})
	// Not connected: the doorman's host answers a closed port with ICMP.
	var conn *net.UDPConn
	must(t, "listen", n.a.Do(func() (err error) {
		conn, err = net.ListenUDP("udp", nil)
		return err
	}))
	to := net.UDPAddrFromAddrPort(n.knock4)
	defer conn.Close()
	watchdog := time.AfterFunc(opTimeout, func() { c.Close() })
	defer watchdog.Stop()
	payload := []byte(knockTo("idle"))
	var delays []time.Duration
	var p Packet
	for i := range 60 {
		time.Sleep(time.Duration(3+rand.IntN(7)) * time.Millisecond) // the ring is idle
		start := time.Now()
		if _, err := conn.WriteToUDP(payload, to); err != nil {
			t.Fatal(err)
		}
		if err := c.Read(&p); err != nil {
			t.Fatalf("Read: %v", err)
		}
		if i >= 10 { // the first ones warm up the path
			delays = append(delays, time.Since(start))
		}
	}
	slices.Sort(delays)
	q := func(f float64) time.Duration { return delays[int(f*float64(len(delays)-1))] }
	t.Logf("%-8s idle knock, write to Read: p50 %v, p90 %v, max %v (%d knocks)", mode, q(0.5), q(0.9), q(1), len(delays))
	c.Close()
}

// flood has a child process send count datagrams of one kind as fast as
// it can, reads them, and prints the receiving process's CPU time per
// datagram (getrusage: user and system time of all its threads, from
// before the flood until the last datagram is read) and the rate.
//
//   - knock-shaped: first byte a digit and a classic length, so the kernel
//     filter passes them and each costs the whole user-space path: ring,
//     decode, address check, and protocol.ParseKnock (which rejects it).
//   - junk: random first bytes and lengths the filter drops in the kernel;
//     the figure shows what they cost the doorman process (nothing, but
//     for the kernel's softirq work, which is charged to whoever runs it).
func flood(t *testing.T, n *testNet, mode Mode, kind string, count, pps int) {
	c := open(t, n.b, Config{Interface: n.ifB(), Mode: mode, KnockPort: testPort})
	defer c.Close()
	cmd := n.a.Command(t.Context(), os.Args[0], "-test.run=^TestFloodSender$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d,%d", floodEnv, n.knock4, kind, count, pps))
	cmd.Stderr = os.Stderr
	var read, delivered atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var p Packet
		var k protocol.Knock
		for {
			err := c.Read(&p)
			if err != nil && !isSentinel(err) {
				return
			}
			if err == nil {
				delivered.Add(1)
				_ = protocol.ParseKnock(p.Payload, &k)
			}
			read.Add(1)
		}
	}()
	cpu0, wall0 := processCPU(t), time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sender: %v", err)
	}
	sent, sendTime := parseSender(t, string(out))
	// Wait until the reader has caught up: all read, or no progress for a
	// while (the kernel dropped the rest).
	for last := int64(-1); read.Load() != last && read.Load() < int64(sent); {
		last = read.Load()
		time.Sleep(100 * time.Millisecond)
	}
	cpu, wall := processCPU(t)-cpu0, time.Since(wall0)
	drops := ringDrops(t, c)
	c.Close()
	<-done
	rate := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
	if r := read.Load(); r > 0 {
		t.Logf("%-8s %-12s sent %d in %v (%.0f/s); read %d (%d delivered), ring drops %d: %.0f ns CPU per datagram read",
			mode, kind, sent, sendTime.Round(time.Millisecond), rate(sent, sendTime), r, delivered.Load(), drops,
			float64(cpu.Nanoseconds())/float64(r))
	} else {
		t.Logf("%-8s %-12s sent %d in %v (%.0f/s); read 0: the kernel filter dropped them all; the doorman process used %v CPU in %v (%.1f ns per datagram sent)",
			mode, kind, sent, sendTime.Round(time.Millisecond), rate(sent, sendTime),
			cpu.Round(time.Microsecond), wall.Round(time.Millisecond), float64(cpu.Nanoseconds())/float64(sent))
	}
}

// processCPU is the process's user and system time so far.
func processCPU(t testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ringDrops reads the packets the ring had no room for (PACKET_STATISTICS;
// reading resets them).
func ringDrops(t testing.TB, c *Conn) uint32 {
	if c.socket {
		return 0
	}
	st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		t.Fatal(err)
	}
	return st.Drops
}

func parseSender(t testing.TB, out string) (int, time.Duration) {
	for _, line := range strings.Split(out, "\n") {
		var sent int
		var ns int64
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "sent %d in %d ns", &sent, &ns); err == nil {
			return sent, time.Duration(ns)
		}
	}
	t.Fatalf("sender output without a result:\n%s", out)
	return 0, 0
}

// TestFloodSender is the flood's sender, run as a child process by flood
// (it skips otherwise), inside a's namespace. It sends with sendmmsg,
// bounded by count and floodLimit.
func TestFloodSender(t *testing.T) {
	spec := os.Getenv(floodEnv)
	if spec == "" {
		t.Skip("the flood sender runs only as a child of TestIntegrationFigures")
	}
	f := strings.Split(spec, ",")
	if len(f) != 4 {
		t.Fatalf("%s=%q", floodEnv, spec)
	}
	dst, kind := f[0], f[1]
	count, err := strconv.Atoi(f[2])
	must(t, "count", err)
	pps, err := strconv.Atoi(f[3]) // 0: as fast as possible
	must(t, "rate", err)
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
	must(t, "dial", err)
	raw, err := conn.SyscallConn()
	must(t, "raw conn", err)

	// A batch of distinct payloads, reused.
	const batch = 64
	payloads := make([][]byte, batch)
	for i := range payloads {
		switch kind {
		case "knock-shaped": // passes the filter, fails ParseKnock
			payloads[i] = []byte(fmt.Sprintf("9%0*d", protocol.MinClassicLen+i%30-1, i))
		default: // dropped by the filter: a non-digit first byte, or a bad length
			b := make([]byte, 1+rand.IntN(120))
			for j := range b {
				b[j] = byte(rand.IntN(256))
			}
			if i%2 == 0 {
				b[0] = 'A'
			} else {
				b = []byte(strings.Repeat("7", protocol.MinClassicLen-1))
			}
			payloads[i] = b
		}
	}
	iovs := make([]unix.Iovec, batch)
	msgs := make([]unix.Mmsghdr, batch)
	for i := range msgs {
		iovs[i].Base = &payloads[i][0]
		iovs[i].SetLen(len(payloads[i]))
		msgs[i].Hdr.Iov = &iovs[i]
		msgs[i].Hdr.Iovlen = 1
	}
	start := time.Now()
	sent := 0
	for sent < count && time.Since(start) < floodLimit {
		want := min(batch, count-sent)
		if pps > 0 {
			want = 1
			if ahead := time.Duration(sent)*time.Second/time.Duration(pps) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		var n uintptr
		var errno unix.Errno
		raw.Write(func(fd uintptr) bool {
			n, _, errno = unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(want), 0, 0, 0)
			return errno != unix.EAGAIN
		})
		switch errno {
		case 0:
			sent += int(n)
		case unix.ECONNREFUSED, unix.ENOBUFS: // an ICMP error from the doorman's host, a full queue: go on
		default:
			t.Fatalf("sendmmsg: %v", errno)
		}
	}
	fmt.Printf("sent %d in %d ns\n", sent, time.Since(start).Nanoseconds())
}

// drainRing has a sender fill the ring while nobody reads, then Read drains
// it: the CPU time per datagram of the batched path alone, without
// wakeups (the doorman under a flood it cannot keep up with).
func drainRing(t *testing.T, n *testNet) {
	c := open(t, n.b, Config{Interface: n.ifB(), KnockPort: testPort})
	defer c.Close()
	count := newRingGeometry(cookedFrameSize).frames * 7 / 8 // fits the ring
	cmd := n.a.Command(t.Context(), os.Args[0], "-test.run=^TestFloodSender$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d,%d", floodEnv, n.knock4, "knock-shaped", count, 0))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sender: %v", err)
	}
	sent, _ := parseSender(t, string(out))
	// The kernel may drop a few before the ring (a full backlog queue):
	// a marker after the flood ends the drain.
	time.Sleep(10 * time.Millisecond)
	marker := knockTo("marker")
	sendUDP(t, n.a, n.knock4, marker)
	time.Sleep(10 * time.Millisecond) // its block retires
	watchdog := time.AfterFunc(opTimeout, func() { c.Close() })
	defer watchdog.Stop()
	var p Packet
	var k protocol.Knock
	cpu0, wall0 := processCPU(t), time.Now()
	read := 0
	for ; ; read++ {
		if err := c.Read(&p); err != nil {
			t.Fatalf("Read %d: %v", read, err)
		}
		if string(p.Payload) == marker {
			break
		}
		_ = protocol.ParseKnock(p.Payload, &k)
	}
	cpu, wall := processCPU(t)-cpu0, time.Since(wall0)
	t.Logf("network  drained a full ring: %d of %d knock-shaped datagrams sent (ring drops %d): %.0f ns CPU and %.0f ns wall per datagram",
		read, sent, ringDrops(t, c), float64(cpu.Nanoseconds())/float64(read), float64(wall.Nanoseconds())/float64(read))
}
