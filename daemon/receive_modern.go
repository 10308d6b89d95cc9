package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"time"

	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/daemon/ratelimit"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/protocol"
)

// Modern knocks are verified in two halves (MODERN-12.11). The receive
// routine runs the checks that cost no public-key work, steps 2 to 4, and
// queues what passes; modern routines do the public-key work (about
// 100-250 µs a knock) and the rest. A full queue drops the knock rather
// than stall the capture, which classic knocks share.
const (
	// modernQueue is how many knocks may wait for the public-key work:
	// with one routine at ~200 µs a knock, about 50 ms of work.
	modernQueue = 256
	// maxModernWorkers bounds the routines doing the public-key work.
	maxModernWorkers = 4
)

// modernWorkers returns how many routines open modern knocks: one per
// CPU, up to maxModernWorkers. Two knocks of one client verified at once
// may be decided out of order; the later one then wins and the earlier is
// stale, as MODERN-12.17 allows.
func modernWorkers() int { return max(1, min(runtime.GOMAXPROCS(0), maxModernWorkers)) }

// modernJob is a modern knock that passed the cheap checks, waiting for
// the public-key work. It holds a copy of the datagram: the capture reuses
// its buffer.
type modernJob struct {
	opener   *protocol.Opener // the key whose mac1 it passed
	src, dst netip.Addr
	at       time.Time // arrival: its time is checked against this
	payload  [protocol.ModernKnockLen]byte
}

// SetOpener changes the doorman's key for modern knocks (on reload); nil
// refuses them all as ReasonModernNoKey. Knocks already queued are opened
// with the key they passed mac1 under.
func (e *Engine) SetOpener(o *protocol.Opener) { e.opener.Store(o) }

// Opener returns the doorman's key in force for modern knocks; nil = none.
func (e *Engine) Opener() *protocol.Opener { return e.opener.Load() }

// newSourceLimiter returns the per-source budget of public-key work of s
// (MODERN-12.12).
func (e *Engine) newSourceLimiter(s *Settings) *ratelimit.Limiter {
	return &ratelimit.Limiter{Rate: s.ModernRate, Burst: s.ModernBurst, Now: e.now}
}

// handleModern runs steps 2 to 4 of MODERN-12.11 on a datagram that starts
// with the modern marker, and queues it for the public-key work. It does
// not allocate: junk, scanners, knocks for other doormen and floods cost
// about as much as a classic knock.
func (e *Engine) handleModern(p *capture.Packet) {
	o := e.opener.Load()
	if o == nil {
		e.dropModern(ReasonModernNoKey, p)
		return
	}
	if err := o.Precheck(p.Payload); err != nil {
		// Junk or another doorman's knocks: counted, logged at debug
		// level only (MODERN-12.19).
		r := ReasonMAC1
		switch err {
		case protocol.ErrModernType:
			r = ReasonModernVersion
		case protocol.ErrModernLength, protocol.ErrNotModern:
			r = ReasonModernLength
		}
		e.dropModern(r, p)
		return
	}
	if !e.sources.Load().Allow(p.Src) {
		// Made for this doorman, or by someone who knows its public key:
		// worth a warning, bounded in rate like every refusal.
		e.refuseModern(ReasonRateLimited, modernRefusal{src: p.Src, dst: p.Dst})
		return
	}
	j := modernJob{opener: o, src: p.Src, dst: p.Dst, at: e.now()}
	copy(j.payload[:], p.Payload)
	select {
	case e.modernQ <- j:
	default:
		e.refuseModern(ReasonModernBusy, modernRefusal{src: p.Src, dst: p.Dst}, slog.Int("queue", modernQueue))
	}
}

// dropModern counts a modern datagram refused before the public-key work
// for r, and logs it at debug level, bounded in rate.
func (e *Engine) dropModern(r Reason, p *capture.Packet) {
	e.counters.add(r)
	if !e.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	if ok, suppressed := e.limit.allow(r); ok {
		e.log.LogAttrs(context.Background(), slog.LevelDebug, "modern knock dropped: "+r.Describe(),
			slog.String("reason", r.String()), slog.Any("src", p.Src), slog.String("head", headHex(p.Payload)),
			slog.Uint64("suppressed_since_last", suppressed))
	}
}

// routineModern opens queued modern knocks until stop is closed; what is
// still queued then is dropped.
func (e *Engine) routineModern(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		select {
		case <-stop:
			return
		case j := <-e.modernQ:
			e.verifyModern(&j)
		}
	}
}

// verifyModern runs steps 5 to 12 of MODERN-12.11 on a queued knock and
// asks the door loop for a door if it passes.
func (e *Engine) verifyModern(j *modernJob) {
	k, err := j.opener.Open(j.payload[:])
	if err != nil {
		var fe *protocol.FieldError
		if errors.As(err, &fe) {
			// The field only: no decrypted value of a knock whose sender
			// is not known yet is logged (MODERN-12.19).
			e.refuseModern(ReasonModernRequest, modernRefusal{src: j.src, dst: j.dst},
				slog.String("field", string(fe.Field)), slog.String("problem", fe.Reason))
			return
		}
		var extra []slog.Attr
		if !errors.Is(err, protocol.ErrDecrypt) {
			extra = append(extra, slog.String("problem", err.Error()))
		}
		e.refuseModern(ReasonDecrypt, modernRefusal{src: j.src, dst: j.dst}, extra...)
		return
	}
	g := e.guests.Load().byKey[k.Client]
	if g == nil {
		// The key tells the administrator whose knock it was.
		e.refuseModern(ReasonUnknownGuest, modernRefusal{src: j.src, dst: j.dst}, slog.String("key", k.Client.String()))
		return
	}
	s := e.settings.Load()
	verify := protocol.VerifyModern
	if e.opts.VerifyModern != nil {
		verify = e.opts.VerifyModern
	}
	skew, err := verify(&k, &g.Guest, j.src, j.at, s.ModernWindow)
	m := modernRefusal{src: j.src, dst: j.dst, g: g, port: k.Port,
		info: &ModernInfo{Skew: skew, Stated: !k.AsSeen(), SrcPort: k.SourcePort}}
	switch {
	case err == nil:
	case errors.Is(err, protocol.ErrClockSkew):
		e.refuseModern(ReasonClockSkew, m, slog.String("skew", protocol.DescribeSkew(skew)), slog.Duration("window", window(s)))
		return
	case errors.Is(err, protocol.ErrSourceMismatch):
		e.refuseModern(ReasonSourceMismatch, m, slog.Any("stated", k.Source))
		return
	case errors.Is(err, protocol.ErrPortNotAllowed):
		e.refuseModern(ReasonPort, m)
		return
	case errors.Is(err, protocol.ErrAddrNotAllowed):
		e.refuseModern(ReasonAddress, m)
		return
	default:
		// A check this engine does not know: refuse, and say which.
		e.refuseModern(ReasonModernRequest, m, slog.String("problem", err.Error()))
		return
	}
	door, _ := k.Door(j.src) // VerifyModern checked the binding
	if max := s.MaxDoors; max > 0 && e.OpenDoors() >= max {
		// Before the stamp: a knock refused for room stays usable.
		e.refuseModern(ReasonTooManyDoors, m, slog.Int("max_doors", max))
		return
	}
	// Recorded durably before the door opens (MODERN-12.17).
	if e.opts.Stamps == nil {
		e.refuseModernAt(slog.LevelError, ReasonStampFailed, m, slog.String("err", "no stamp store"))
		return
	}
	last, err := e.opts.Stamps.Advance([32]byte(k.Client), k.Time)
	switch {
	case err == nil:
	case errors.Is(err, replay.ErrStale):
		e.refuseModern(ReasonStale, m, slog.Time("last_accepted", time.Unix(0, int64(last))),
			slog.Time("knock_time", time.Unix(0, int64(k.Time))))
		return
	case errors.Is(err, replay.ErrStoreChanged), errors.Is(err, replay.ErrStoreFailed), errors.Is(err, replay.ErrClosed):
		// Every modern knock is refused until a restart: fail closed, loudly.
		e.refuseModernAt(slog.LevelError, ReasonStampFailed, m, slog.String("err", err.Error()))
		return
	default:
		e.refuseModernAt(slog.LevelError, ReasonStampError, m, slog.String("err", err.Error()))
		return
	}
	e.counters.add(ReasonAccepted)
	source := "seen"
	if m.info.Stated {
		source = "stated"
	}
	attrs := []slog.Attr{slog.Any("src", door), slog.String("group", g.Name), slog.Int("port", int(k.Port)),
		slog.Any("dst", j.dst), slog.String("protocol", protocolModern), slog.String("source", source)}
	if k.SourcePort != 0 {
		attrs = append(attrs, slog.Int("src_port", int(k.SourcePort)))
	}
	e.log.LogAttrs(context.Background(), config.LevelNotice, "knock accepted", attrs...)
	e.emit(Event{Kind: EventKnock, Verdict: ReasonAccepted, Protocol: protocolModern, Src: door, Dst: j.dst,
		Group: g.Name, Port: k.Port, Modern: m.info})
	e.requestDoor(doorRequest{src: door, dst: j.dst, port: k.Port, pinPort: k.SourcePort, group: g.Name, at: e.now()}, len(e.modernQ) > 0)
}

// window returns the time window in force.
func window(s *Settings) time.Duration {
	if s.ModernWindow <= 0 {
		return protocol.DefaultModernWindow
	}
	return s.ModernWindow
}

// modernRefusal is what a refused modern knock's log record and event
// show: its addresses, and once its guest is known the guest, the port
// and the rest of the request.
type modernRefusal struct {
	src, dst netip.Addr
	g        *guestEntry // nil before step 7: nothing of the request is shown
	port     uint16
	info     *ModernInfo
}

// refuseModern counts a refused modern knock and logs it at warning level
// and reports it, both bounded in rate (MODERN-12.19).
func (e *Engine) refuseModern(r Reason, m modernRefusal, extra ...slog.Attr) {
	e.refuseModernAt(slog.LevelWarn, r, m, extra...)
}

// refuseModernAt is refuseModern at the given level: errors for refusals
// that need the admin (a broken stamp store).
func (e *Engine) refuseModernAt(level slog.Level, r Reason, m modernRefusal, extra ...slog.Attr) {
	ok, suppressed := e.countRefusal(r)
	if !ok {
		return
	}
	ev := Event{Kind: EventKnock, Verdict: r, Protocol: protocolModern, Src: m.src, Dst: m.dst}
	if m.g != nil {
		ev.Group, ev.Port, ev.Modern = m.g.Name, m.port, m.info
	}
	e.reportRefusal(level, ev, suppressed, extra...)
}
