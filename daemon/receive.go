package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"

	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/protocol"
)

// RoutineReceive is the hot path: read, verify, hand accepted knocks to the
// door loop. It returns nil when the source is closed, or the source's
// error when it fails.
func (e *Engine) RoutineReceive() error {
	var p capture.Packet
	var k protocol.Knock
	for {
		if err := e.opts.Source.Read(&p); err != nil {
			if r, ok := dropReason(err); ok {
				e.counters.add(r)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		e.handleKnock(&p, &k)
	}
}

// buffered reports whether the source holds packets it can deliver at
// once (capture.Conn.Buffered); a source that cannot tell holds none.
func (e *Engine) buffered() bool {
	b, ok := e.opts.Source.(interface{ Buffered() bool })
	return ok && b.Buffered()
}

// dropReason maps the capture's per-packet drop errors to counters; any
// other error is the source failing.
func dropReason(err error) (Reason, bool) {
	switch err {
	case capture.ErrTruncated:
		return ReasonTruncated, true
	case capture.ErrIPOptions:
		return ReasonIPOptions, true
	case capture.ErrFragment:
		return ReasonFragment, true
	case capture.ErrChecksum:
		return ReasonChecksum, true
	case capture.ErrMartian:
		return ReasonMartian, true
	case capture.ErrNotLocal:
		return ReasonNotLocal, true
	case capture.ErrNotCandidate:
		return ReasonNotCandidate, true
	}
	return 0, false
}

// handleKnock runs the checks of CLASSIC-4.1 steps 2-7 on one datagram,
// or hands a modern one to handleModern.
func (e *Engine) handleKnock(p *capture.Packet, k *protocol.Knock) {
	switch protocol.Sniff(p.Payload) {
	case protocol.KindModern:
		e.handleModern(p)
		return
	case protocol.KindUnknown:
		// Not a knock at all (CLASSIC-2.6): counted, not logged.
		e.counters.add(ReasonNotKnock)
		return
	}
	if e.settings.Load().ClassicOff {
		// A migrated site (MODERN-12.20/3): not even parsed.
		e.reject(ReasonClassicDisabled, p, nil)
		return
	}
	if err := protocol.ParseKnock(p.Payload, k); err != nil {
		attrs := []slog.Attr{slog.String("head", headHex(p.Payload))}
		var fe *protocol.FieldError
		if errors.As(err, &fe) {
			attrs = append(attrs, slog.String("field", string(fe.Field)), slog.String("problem", fe.Reason))
		} else {
			attrs = append(attrs, slog.String("problem", err.Error()))
		}
		e.reject(ReasonMalformed, p, nil, attrs...)
		return
	}
	g := e.guests.Load().byName[string(k.Group())]
	if g == nil {
		e.reject(ReasonUnknownGuest, p, k)
		return
	}
	switch err := protocol.Verify(k, &g.Guest, p.Src); {
	case err == nil:
	case errors.Is(err, protocol.ErrPortNotAllowed):
		e.reject(ReasonPort, p, k)
		return
	case errors.Is(err, protocol.ErrAddrNotAllowed):
		e.reject(ReasonAddress, p, k)
		return
	case errors.Is(err, protocol.ErrBadMAC):
		e.reject(ReasonMAC, p, k)
		return
	case errors.Is(err, protocol.ErrUnknownGuest):
		e.reject(ReasonUnknownGuest, p, k)
		return
	default:
		// A check this engine does not know: refuse, and say which.
		e.reject(ReasonMAC, p, k, slog.String("problem", err.Error()))
		return
	}
	if max := e.settings.Load().MaxDoors; max > 0 && e.OpenDoors() >= max {
		// Before the replay store: a knock refused for room stays usable.
		e.reject(ReasonTooManyDoors, p, k, slog.Int("max_doors", max))
		return
	}
	first, err := e.opts.Replay.Admit(k.MAC, g.fp)
	switch {
	case errors.Is(err, protocol.ErrReplay):
		e.reject(ReasonReplay, p, k, slog.Time("first_accepted", first))
		return
	case errors.Is(err, protocol.ErrReplayFull):
		e.rejectError(ReasonReplayFull, p, k, err)
		return
	case errors.Is(err, replay.ErrStoreChanged), errors.Is(err, replay.ErrStoreFailed), errors.Is(err, replay.ErrClosed):
		// Every knock is refused until a restart: fail closed, loudly.
		e.rejectError(ReasonStoreFailed, p, k, err)
		return
	case err != nil:
		e.rejectError(ReasonStoreError, p, k, err)
		return
	}
	e.counters.add(ReasonAccepted)
	e.log.LogAttrs(context.Background(), config.LevelNotice, "knock accepted", slog.Any("src", p.Src),
		slog.String("group", g.Name), slog.Int("port", int(k.Port)), slog.Any("dst", p.Dst), slog.String("protocol", protocolClassic))
	e.emit(Event{Kind: EventKnock, Verdict: ReasonAccepted, Protocol: protocolClassic, Src: p.Src, Dst: p.Dst, Group: g.Name, Port: k.Port})
	e.requestDoor(doorRequest{src: p.Src, dst: p.Dst, port: k.Port, group: g.Name, at: e.now()}, e.buffered())
}

// reject counts a refused knock, logs it at warning level and reports it,
// both rate-limited (CLASSIC-4.5).
func (e *Engine) reject(r Reason, p *capture.Packet, k *protocol.Knock, extra ...slog.Attr) {
	e.refuse(slog.LevelWarn, r, p, k, extra...)
}

// rejectError is reject for refusals that need the admin (a full or broken
// replay store): logged as errors.
func (e *Engine) rejectError(r Reason, p *capture.Packet, k *protocol.Knock, err error) {
	e.refuse(slog.LevelError, r, p, k, slog.String("err", err.Error()))
}

func (e *Engine) refuse(level slog.Level, r Reason, p *capture.Packet, k *protocol.Knock, extra ...slog.Attr) {
	ok, suppressed := e.countRefusal(r)
	if !ok {
		return
	}
	ev := Event{Kind: EventKnock, Verdict: r, Protocol: protocolClassic, Src: p.Src, Dst: p.Dst}
	if k != nil {
		ev.Group, ev.Port = k.GroupString(), k.Port
	}
	e.reportRefusal(level, ev, suppressed, extra...)
}

// Protocol names of knock events.
const (
	protocolClassic = "classic"
	protocolModern  = "modern"
)

// countRefusal counts a refused knock and says whether its log record and
// event may go out (CLASSIC-4.5/3), with how many were suppressed since
// the last that did.
func (e *Engine) countRefusal(r Reason) (bool, uint64) {
	e.counters.add(r)
	return e.limit.allow(r)
}

// reportRefusal logs and reports the refusal ev, which countRefusal let
// through.
func (e *Engine) reportRefusal(level slog.Level, ev Event, suppressed uint64, extra ...slog.Attr) {
	attrs := make([]slog.Attr, 0, 8+len(extra))
	attrs = append(attrs, slog.String("reason", ev.Verdict.String()), slog.Any("src", ev.Src))
	if ev.Protocol != protocolClassic {
		attrs = append(attrs, slog.String("protocol", ev.Protocol))
	}
	if ev.Group != "" {
		attrs = append(attrs, slog.String("group", ev.Group))
	}
	if ev.Port != 0 {
		attrs = append(attrs, slog.Int("port", int(ev.Port)))
	}
	attrs = append(attrs, extra...)
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed_since_last", suppressed))
	}
	e.log.LogAttrs(context.Background(), level, "knock refused: "+ev.Verdict.Describe(), attrs...)
	e.emit(ev)
}

func headHex(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return hex.EncodeToString(b)
}
