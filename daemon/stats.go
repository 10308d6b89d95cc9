package daemon

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Reason is why a packet was dropped or what became of a knock. Counters are
// kept per reason (CLASSIC-4.5/3).
type Reason uint8

// Reasons, in pipeline order.
const (
	ReasonTruncated       Reason = iota // capture: bad header
	ReasonIPOptions                     // CLASSIC-4.3
	ReasonFragment                      // CLASSIC-4.3
	ReasonChecksum                      // bad IPv4 header or UDP checksum: the kernel drops it
	ReasonMartian                       // impossible address (IPv4-mapped in IPv6, multicast source...)
	ReasonNotLocal                      // CLASSIC-4.4
	ReasonNotCandidate                  // filtered packet that slipped through
	ReasonNotKnock                      // CLASSIC-2.6: first byte neither a digit nor the modern marker
	ReasonClassicDisabled               // MODERN-12.20/3: a classic knock with classic off
	ReasonModernNoKey                   // a modern knock, and no private key is loaded
	ReasonModernVersion                 // MODERN-12.11 step 2: type byte of another version (MODERN-12.4)
	ReasonModernLength                  // step 2: not the length of a modern knock (MODERN-12.3/2)
	ReasonMAC1                          // step 3: mac1 does not match (MODERN-12.6/2)
	ReasonRateLimited                   // step 4: the source's public-key budget is spent (MODERN-12.12)
	ReasonModernBusy                    // step 4: the queue to the public-key work is full
	ReasonDecrypt                       // step 5 (MODERN-12.5)
	ReasonModernRequest                 // step 6 (MODERN-12.8/1)
	ReasonClockSkew                     // step 8 (MODERN-12.14)
	ReasonSourceMismatch                // step 9 (MODERN-12.15)
	ReasonStale                         // step 12 (MODERN-12.17/1)
	ReasonStampError                    // the stamp store could not record this knock
	ReasonStampFailed                   // the stamp store refuses every modern knock until a restart
	ReasonMalformed                     // CLASSIC-2.x
	ReasonUnknownGuest                  // CLASSIC-4.1 step 3
	ReasonPort                          // step 4
	ReasonAddress                       // step 5
	ReasonMAC                           // step 6
	ReasonTooManyDoors                  // the configured number of doors is open
	ReasonReplay                        // step 7
	ReasonReplayFull                    // CLASSIC-5.4
	ReasonStoreError                    // the replay store could not record this knock
	ReasonStoreFailed                   // the replay store refuses every knock until a restart
	ReasonAccepted                      // knock accepted, door opening
	ReasonFirewall                      // a firewall operation failed
	ReasonSYN                           // a door claimed by the SYN the kernel admitted
	ReasonLateClaim                     // a claim for a door that had closed
	ReasonRearmed                       // a claimed door armed again: its handshake never completed
	numReasons
)

var reasonNames = [numReasons]string{
	"truncated", "ip-options", "fragment", "checksum", "martian-address", "not-local", "not-candidate", "not-a-knock",
	"classic-disabled", "modern-no-key", "unsupported-version", "modern-malformed", "bad-mac1", "rate-limited", "modern-busy",
	"does-not-decrypt", "malformed-request", "clock-skew", "source-mismatch", "stale", "stamp-store-error", "stamp-store-failed",
	"malformed", "unknown-guest", "port-not-allowed", "address-not-allowed", "incorrect-secret", "too-many-doors",
	"replay", "replay-store-full", "replay-store-error", "replay-store-failed", "accepted", "firewall-error", "syn", "late-claim", "rearmed",
}

// describe holds the log wording of the knock refusals, the names of
// CLASSIC-4.1 and MODERN-12.11.
var describe = map[Reason]string{
	ReasonClassicDisabled: "classic disabled (classic off)",
	ReasonModernNoKey:     "modern knock, but no private key is loaded (doormand keygen)",
	ReasonModernVersion:   "unsupported version",
	ReasonModernLength:    "malformed",
	ReasonMAC1:            "bad mac1",
	ReasonRateLimited:     "rate limited",
	ReasonModernBusy:      "too many modern knocks waiting for verification",
	ReasonDecrypt:         "does not decrypt",
	ReasonModernRequest:   "malformed request",
	ReasonClockSkew:       "clock skew",
	ReasonSourceMismatch:  "source mismatch: the knock states another source address",
	ReasonStale:           "stale: not later than the guest's last accepted knock (PROBABLE REPLAY ATTEMPT, or overtaken by a newer knock)",
	ReasonStampError:      "stamp store cannot record it",
	ReasonStampFailed:     "stamp store failed or changed under the daemon: every modern knock is refused until a restart",
	ReasonMalformed:       "bad packet",
	ReasonUnknownGuest:    "unknown guest",
	ReasonPort:            "guest not registered for port",
	ReasonAddress:         "guest not registered for address",
	ReasonMAC:             "incorrect secret",
	ReasonTooManyDoors:    "too many open doors (max-doors)",
	ReasonReplay:          "PROBABLE REPLAY ATTEMPT",
	ReasonReplayFull:      "replay store full",
	ReasonStoreError:      "replay store cannot record it",
	ReasonStoreFailed:     "replay store failed or changed under the daemon: every knock is refused until a restart",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Describe returns the reason as the log says it.
func (r Reason) Describe() string {
	if d, ok := describe[r]; ok {
		return d
	}
	return r.String()
}

// Counters counts packets by reason. It is safe for concurrent use.
type Counters struct {
	n [numReasons]atomic.Uint64
}

func (c *Counters) add(r Reason) { c.n[r].Add(1) }

// Get returns the count for r.
func (c *Counters) Get(r Reason) uint64 { return c.n[r].Load() }

// Snapshot returns all non-zero counters by name.
func (c *Counters) Snapshot() map[string]uint64 {
	m := map[string]uint64{}
	for i := range c.n {
		if v := c.n[i].Load(); v > 0 {
			m[Reason(i).String()] = v
		}
	}
	return m
}

// LogValue lets a Counters be logged as a group of counts.
func (c *Counters) LogValue() slog.Value {
	var attrs []slog.Attr
	for i := range c.n {
		if v := c.n[i].Load(); v > 0 {
			attrs = append(attrs, slog.Uint64(Reason(i).String(), v))
		}
	}
	return slog.GroupValue(attrs...)
}

// limiter bounds warning logs per reason: a burst, then a steady rate, and
// a count of what was suppressed that the next allowed record reports
// (CLASSIC-4.5/3). Keyed by reason, not by address: an attacker can forge
// addresses but not multiply reasons.
type limiter struct {
	mu         sync.Mutex
	now        func() time.Time
	rate       float64 // tokens per second
	burst      float64
	tokens     [numReasons]float64
	last       [numReasons]time.Time
	suppressed [numReasons]uint64
}

func newLimiter(now func() time.Time) *limiter {
	l := &limiter{now: now, rate: 5, burst: 20}
	for i := range l.tokens {
		l.tokens[i] = l.burst
	}
	return l
}

// allow reports whether a record for r may be logged, and how many were
// suppressed since the last one that was.
func (l *limiter) allow(r Reason) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last[r].IsZero() {
		l.tokens[r] = min(l.burst, l.tokens[r]+now.Sub(l.last[r]).Seconds()*l.rate)
	}
	l.last[r] = now
	if l.tokens[r] < 1 {
		l.suppressed[r]++
		return false, 0
	}
	l.tokens[r]--
	s := l.suppressed[r]
	l.suppressed[r] = 0
	return true, s
}

// routineStats logs the counters every interval until ctx ends.
func (e *Engine) routineStats(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.LogStats()
		}
	}
}

// LogStats logs all counters at info level (periodically, and on SIGUSR1).
// It also reports them as an EventCounters.
func (e *Engine) LogStats() {
	e.log.Info("counters", "packets", &e.counters, "open_doors", e.OpenDoors())
	e.emit(Event{Kind: EventCounters, Counters: e.counters.Snapshot(), OpenDoors: e.OpenDoors()})
}
