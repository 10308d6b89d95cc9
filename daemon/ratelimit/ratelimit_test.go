package ratelimit

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newLimiter(rate, burst, max int) (*Limiter, *fakeClock) {
	c := &fakeClock{t: time.Unix(1767225600, 0)}
	return &Limiter{Rate: rate, Burst: burst, MaxSources: max, Now: c.now}, c
}

var (
	a = netip.MustParseAddr("198.18.0.1")
	b = netip.MustParseAddr("198.18.0.2")
)

func allowN(l *Limiter, src netip.Addr, n int) int {
	ok := 0
	for range n {
		if l.Allow(src) {
			ok++
		}
	}
	return ok
}

// TestBurstThenRate: a source gets its burst at once, then one knock per
// 1/Rate seconds (MODERN-12.12).
func TestBurstThenRate(t *testing.T) {
	l, c := newLimiter(20, 5, 0)
	if got := allowN(l, a, 10); got != 5 {
		t.Fatalf("burst: %d allowed, want 5", got)
	}
	c.advance(49 * time.Millisecond)
	if l.Allow(a) {
		t.Fatal("allowed before a knock's cost refilled")
	}
	c.advance(time.Millisecond)
	if !l.Allow(a) || l.Allow(a) {
		t.Fatal("not exactly one knock after 50 ms")
	}
	c.advance(time.Hour)
	if got := allowN(l, a, 10); got != 5 {
		t.Fatalf("after a long pause: %d allowed, want the burst of 5", got)
	}
}

// TestFloodDoesNotStarveOthers: a source that floods is held to its rate
// while every other source keeps its whole burst (MODERN-12.12).
func TestFloodDoesNotStarveOthers(t *testing.T) {
	l, c := newLimiter(0, 0, 0)
	for range 100 {
		allowN(l, a, 1000)
		c.advance(10 * time.Millisecond)
	}
	if got := allowN(l, b, DefaultBurst); got != DefaultBurst {
		t.Fatalf("a quiet source got %d of %d while another flooded", got, DefaultBurst)
	}
}

// TestKeys: IPv4-mapped addresses count as IPv4; an IPv6 /64 is one
// source, another /64 another.
func TestKeys(t *testing.T) {
	for in, want := range map[string]string{
		"198.18.0.1":            "198.18.0.1",
		"::ffff:198.18.0.1":     "198.18.0.1",
		"2001:db8:1:2:3:4:5:6":  "2001:db8:1:2::",
		"fe80::1%eth0":          "fe80::",
		"2001:db8:1:2:ffff::ff": "2001:db8:1:2::",
	} {
		if got := Key(netip.MustParseAddr(in)); got != netip.MustParseAddr(want) {
			t.Errorf("Key(%s) = %v, want %s", in, got, want)
		}
	}
	l, _ := newLimiter(1, 1, 0)
	if !l.Allow(netip.MustParseAddr("2001:db8:1:2::1")) || l.Allow(netip.MustParseAddr("2001:db8:1:2::99")) {
		t.Error("two addresses of one /64 are not one source")
	}
	if !l.Allow(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("another /64 shares a bucket")
	}
	if !l.Allow(a) || l.Allow(netip.MustParseAddr("::ffff:198.18.0.1")) {
		t.Error("an IPv4-mapped address is not its IPv4 address")
	}
}

// TestTableBounded: the table never holds more than MaxSources; new
// sources are refused while it is full, and admitted again once buckets
// have refilled and been swept.
func TestTableBounded(t *testing.T) {
	l, c := newLimiter(20, 5, 3)
	for i := range 3 {
		if !l.Allow(netip.AddrFrom4([4]byte{198, 18, 1, byte(i)})) {
			t.Fatalf("source %d refused", i)
		}
	}
	if l.Allow(b) || l.Len() != 3 {
		t.Fatalf("a 4th source admitted to a full table (len %d)", l.Len())
	}
	if !l.Allow(netip.AddrFrom4([4]byte{198, 18, 1, 0})) {
		t.Fatal("a known source refused because the table is full")
	}
	c.advance(250 * time.Millisecond) // every bucket full again
	if !l.Allow(b) {
		t.Fatal("a new source still refused after the buckets refilled")
	}
	if l.Len() > 3 {
		t.Fatalf("table holds %d", l.Len())
	}
}

// TestSweep: once a second, sources whose buckets are full again are
// forgotten; a source still short of tokens is kept.
func TestSweep(t *testing.T) {
	l, c := newLimiter(20, 5, 0)
	for i := range 100 {
		l.Allow(netip.AddrFrom4([4]byte{198, 18, 2, byte(i)}))
	}
	c.advance(999 * time.Millisecond)
	allowN(l, a, 1000) // a's bucket is empty
	c.advance(time.Millisecond)
	l.Allow(b) // sweeps
	if l.Len() != 2 {
		t.Fatalf("after a sweep %d sources remain, want a and b", l.Len())
	}
	if l.Allow(a) {
		t.Fatal("the sweep reset a's empty bucket")
	}
}

// TestAllowDoesNotAllocate: a known source costs no allocation.
func TestAllowDoesNotAllocate(t *testing.T) {
	l, c := newLimiter(0, 0, 0)
	l.Allow(a)
	if n := testing.AllocsPerRun(1000, func() { c.advance(time.Millisecond); l.Allow(a) }); n != 0 {
		t.Fatalf("%v allocations per Allow", n)
	}
}

// TestZeroValue: the zero Limiter works with the defaults and the real
// clock.
func TestZeroValue(t *testing.T) {
	var l Limiter
	if got := allowN(&l, a, DefaultBurst+3); got < DefaultBurst || got > DefaultBurst+1 {
		t.Fatalf("zero value allowed %d of a burst", got)
	}
}

// TestConcurrent: Allow from several goroutines (run with -race) never
// admits more than the burst at one instant.
func TestConcurrent(t *testing.T) {
	l, _ := newLimiter(20, 5, 0)
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			n := allowN(l, a, 50)
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if total != 5 {
		t.Fatalf("%d allowed at one instant, want the burst of 5", total)
	}
}

// TestPropertyNeverAboveRate: whatever the timing of knocks from a few
// sources, each source gets at most Burst + Rate × elapsed, and a source
// that waited Burst/Rate seconds gets at least its next knock.
func TestPropertyNeverAboveRate(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		rate := rapid.IntRange(1, 100).Draw(t, "rate")
		burst := rapid.IntRange(1, 10).Draw(t, "burst")
		l, c := newLimiter(rate, burst, 0)
		start := c.t
		srcs := []netip.Addr{a, b, netip.MustParseAddr("2001:db8::1")}
		allowed := map[netip.Addr]int{}
		lastKnock := map[netip.Addr]time.Time{}
		for range rapid.IntRange(1, 300).Draw(t, "events") {
			c.advance(time.Duration(rapid.Int64Range(0, int64(2*time.Second/time.Duration(rate))).Draw(t, "gap")))
			src := srcs[rapid.IntRange(0, len(srcs)-1).Draw(t, "src")]
			ok := l.Allow(src)
			if prev, seen := lastKnock[src]; (!seen || c.t.Sub(prev) >= time.Duration(burst)*time.Second/time.Duration(rate)) && !ok {
				t.Fatalf("%v refused after a full refill", src)
			}
			lastKnock[src] = c.t
			if ok {
				allowed[src]++
			}
			limit := float64(burst) + float64(rate)*c.t.Sub(start).Seconds()
			if float64(allowed[src]) > limit+1e-9 {
				t.Fatalf("%v: %d allowed in %v, limit %.2f", src, allowed[src], c.t.Sub(start), limit)
			}
		}
	})
}

// BenchmarkAllow: the cost per knock that reaches the rate limit.
func BenchmarkAllow(b *testing.B) {
	var l Limiter
	srcs := make([]netip.Addr, 256)
	for i := range srcs {
		srcs[i] = netip.AddrFrom4([4]byte{198, 18, 3, byte(i)})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.Allow(srcs[i&255])
		i++
	}
}
