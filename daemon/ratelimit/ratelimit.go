// Package ratelimit bounds how often one source may make the doorman do
// public-key work (spec MODERN-12.12): a token bucket per source, as
// wireguard-go's ratelimiter keeps one for handshake initiations.
//
// A source is an IPv4 address or an IPv6 /64 prefix: whoever holds one IPv6
// address usually holds the whole /64, so keying by address would give a
// flood 2^64 buckets. The table is bounded; buckets that have refilled are
// forgotten, since a new bucket starts full anyway.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"
)

// Defaults, as wireguard-go's for handshake initiations: a source may burst
// 5 knocks and then 20 a second. A person knocks a few times a minute.
const (
	DefaultRate       = 20
	DefaultBurst      = 5
	DefaultMaxSources = 1 << 16
	// sweepEvery is how often buckets that have refilled are dropped.
	sweepEvery = time.Second
)

// Limiter decides per source whether a knock may go on to the public-key
// work. The zero value is ready to use with the defaults and time.Now; set
// the fields before the first Allow. A Limiter is safe for concurrent use.
type Limiter struct {
	// Rate is the sustained number of knocks a second a source may make;
	// 0 means DefaultRate.
	Rate int
	// Burst is how many knocks a source may make at once; 0 means
	// DefaultBurst.
	Burst int
	// MaxSources bounds the number of sources tracked at once; 0 means
	// DefaultMaxSources. A new source finding the table full is refused
	// until buckets refill and are swept, so memory stays bounded under a
	// flood from spoofed addresses.
	MaxSources int
	// Now is the clock; nil means time.Now. Only differences between its
	// readings matter.
	Now func() time.Time

	mu        sync.Mutex
	init      bool
	epoch     time.Time
	cost      int64 // nanoseconds of refill one knock costs
	max       int64 // a full bucket, in nanoseconds
	maxSrc    int
	lastSweep int64
	buckets   map[netip.Addr]bucket
}

type bucket struct {
	last   int64 // nanoseconds since epoch of the last update
	tokens int64 // nanoseconds of credit
}

// setupLocked fixes the parameters at the first use.
func (l *Limiter) setupLocked() {
	rate, burst := l.Rate, l.Burst
	if rate <= 0 {
		rate = DefaultRate
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	l.maxSrc = l.MaxSources
	if l.maxSrc <= 0 {
		l.maxSrc = DefaultMaxSources
	}
	l.cost = int64(time.Second) / int64(rate)
	l.max = l.cost * int64(burst)
	l.epoch = l.now()
	l.buckets = make(map[netip.Addr]bucket)
	l.init = true
}

func (l *Limiter) now() time.Time {
	if l.Now == nil {
		return time.Now()
	}
	return l.Now()
}

// Key returns the source a packet from addr is counted against: the IPv4
// address (an IPv4-mapped IPv6 address counts as IPv4), or the IPv6
// address's /64 prefix, as an address with the host bits cleared.
func Key(addr netip.Addr) netip.Addr {
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr
}

// Allow reports whether a knock from addr may go on, and if so takes its
// cost from the source's bucket. It does not allocate for a source it
// already tracks.
func (l *Limiter) Allow(addr netip.Addr) bool {
	key := Key(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.init {
		l.setupLocked()
	}
	now := int64(l.now().Sub(l.epoch))
	if now-l.lastSweep >= int64(sweepEvery) {
		l.sweepLocked(now)
	}
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxSrc && now-l.lastSweep >= l.cost {
			// Full: buckets refill within one knock's cost, so sweeping
			// this often frees room soon without sweeping per packet.
			l.sweepLocked(now)
		}
		if len(l.buckets) >= l.maxSrc {
			return false
		}
		l.buckets[key] = bucket{last: now, tokens: l.max - l.cost}
		return true
	}
	if elapsed := now - b.last; elapsed > 0 {
		b.tokens = min(b.tokens+elapsed, l.max)
		b.last = now
	}
	if b.tokens < l.cost {
		l.buckets[key] = b
		return false
	}
	b.tokens -= l.cost
	l.buckets[key] = b
	return true
}

// sweepLocked forgets buckets that are full again: they behave exactly as
// a new one would.
func (l *Limiter) sweepLocked(now int64) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.tokens+(now-b.last) >= l.max {
			delete(l.buckets, k)
		}
	}
}

// Len returns the number of sources tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
