package knocker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// DefaultWaitEvery is the interval between connection attempts when
// WaitOpen or DialOpen is given a non-positive one. A doormand opens its
// door within about a millisecond of the knock, so a short interval keeps
// "knock, then connect" quick; attempts are bounded by maxAttempts.
const DefaultWaitEvery = 25 * time.Millisecond

// firstDialDelay separates the knock from the first SYN: both travel the
// same path, so a SYN sent right behind the knock would reach the server
// before the door it asks for exists, and be dropped.
const firstDialDelay = 5 * time.Millisecond

// maxAttempts bounds the connection attempts in flight at once.
const maxAttempts = 32

// WaitOpen tries TCP connections to host:port until one succeeds or ctx ends,
// and returns how long that took. It closes the connection at once, so with
// a daemon that opens a door for a single connection (as 0.81 and doormand
// do) the door is used up: use DialOpen to keep the connection instead.
func WaitOpen(ctx context.Context, host netip.Addr, port uint16, every time.Duration) (time.Duration, error) {
	c, d, err := DialOpen(ctx, host, port, every)
	if err != nil {
		return d, err
	}
	c.Close()
	return d, nil
}

// DialOpen is WaitOpen that returns the first connection that succeeded.
//
// A new attempt starts every interval while earlier ones are still pending,
// so a SYN dropped before the door opened does not hold the caller until the
// kernel's retransmission a second later, and a slow path does not cut off
// attempts that would succeed. At most a bounded number are in flight; all
// others are cancelled, and any that also succeeded are closed. The error
// wraps ErrNotOpened and the last connection error.
func DialOpen(ctx context.Context, host netip.Addr, port uint16, every time.Duration) (net.Conn, time.Duration, error) {
	dest := netip.AddrPortFrom(host.Unmap(), port)
	network := "tcp6"
	if dest.Addr().Is4() {
		network = "tcp4"
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dest.String())
	}
	c, d, err := DialOpenFunc(ctx, dial, every)
	if err != nil {
		return nil, d, fmt.Errorf("%w: tcp %s: %w", ErrNotOpened, dest, err)
	}
	return c, d, nil
}

// DialOpenFunc is DialOpen with the dialling left to dialFn, for callers that
// must make each attempt their own way (from inside a network namespace,
// through a proxy). Its error is the last attempt's, or ctx's.
func DialOpenFunc(ctx context.Context, dialFn func(context.Context) (net.Conn, error), every time.Duration) (net.Conn, time.Duration, error) {
	if every <= 0 {
		every = DefaultWaitEvery
	}
	start := time.Now()
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	type outcome struct {
		c   net.Conn
		err error
	}
	results := make(chan outcome)
	inFlight := 0
	dial := func() {
		inFlight++
		go func() {
			c, err := dialFn(actx)
			results <- outcome{c, err}
		}()
	}
	// drain collects the attempts still running so no goroutine outlives
	// the call, closing any extra connection that won a late race.
	drain := func() {
		cancel()
		for ; inFlight > 0; inFlight-- {
			if r := <-results; r.c != nil {
				r.c.Close()
			}
		}
	}

	tick := time.NewTicker(every)
	defer tick.Stop()
	var lastErr error
	select {
	case <-time.After(firstDialDelay):
	case <-ctx.Done():
	}
	dial()
	for {
		select {
		case r := <-results:
			inFlight--
			if r.err == nil {
				drain()
				return r.c, time.Since(start), nil
			}
			lastErr = r.err
		case <-tick.C:
			if inFlight < maxAttempts {
				dial()
			}
		case <-ctx.Done():
			drain()
			if lastErr == nil || errors.Is(lastErr, context.Canceled) || errors.Is(lastErr, context.DeadlineExceeded) {
				lastErr = ctx.Err()
			}
			return nil, time.Since(start), lastErr
		}
	}
}

// maxSettle bounds how long KnockReady gives the fresh door to open. Past
// the kernel's first SYN retransmission (one second), a SYN that beat the
// door is retried anyway.
const maxSettle = time.Second

// ErrFixedTag: a fixed tag cannot knock twice; the second knock would be a
// replay (CLASSIC-5.1), and a doorman refuses it.
var ErrFixedTag = errors.New("a fixed tag (Options.Tag) cannot be used for a second knock")

// Ready is what KnockReady did.
type Ready struct {
	// First is the knock whose door the probe connection used up.
	First Result
	// Opened is the time from the first knock until the probe connected.
	Opened time.Duration
	// Second is the fresh knock whose door waits for the caller.
	Second Result
}

// KnockReady gives "knock, then connect" a door that is known to work.
// Nothing answers a knock and a door admits exactly one connection
// (CLASSIC-6.2), so the only proof that a knock opened a door is a
// connection through it, which uses that door up. KnockReady therefore
// sends a knock, tries connections for up to wait until one gets through
// (DialOpen) and closes it, then sends a second knock with a fresh tag to
// the same address (CLASSIC-11.6), so that a fresh door waits for the caller's own
// connection. Before returning it gives that door as long to open as the
// first one took (at most a second), so that a connection made right away
// does not arrive before it.
//
// If no connection got through, the error wraps ErrNotOpened and no second
// knock is sent. A doorman keeps the fresh door only for its waitfor time
// (10 s unless configured), and the second knock is not confirmed: if it
// was lost on the way, the caller's connection times out. A door that
// already waited for this address (an unused fresh door of an earlier
// call) takes the probe, so it confirms that a door opened, not which
// knock opened it. Every call uses two entries of the doorman's replay
// store. o.Tag must be nil
// (ErrFixedTag). ctx bounds the whole call, wait only the confirmation.
func KnockReady(ctx context.Context, o Options, wait time.Duration) (Ready, error) {
	var r Ready
	if o.Tag != nil {
		return r, ErrFixedTag
	}
	first, err := Send(ctx, o)
	if err != nil {
		return r, err
	}
	r.First = first
	r.Opened, err = probe(ctx, first.Dest.Addr(), first.Port, wait)
	if err != nil {
		return r, err
	}

	o.Service = strconv.Itoa(int(first.Port)) // already resolved: no second lookup
	k, payload, err := build(ctx, &o)
	if err != nil {
		return r, fmt.Errorf("second knock: %w", err)
	}
	if err := sendTo(ctx, first.Dest, payload); err != nil {
		return r, fmt.Errorf("second knock: %w", err)
	}
	r.Second = Result{Knock: k, Payload: payload, Dest: first.Dest, Port: k.Port}
	return r, settleDoor(ctx, r.Opened)
}

// ModernReady is what KnockReadyModern did.
type ModernReady struct {
	// First is the knock whose door the probe connection used up.
	First ModernResult
	// Opened is the time from the first knock until the probe connected.
	Opened time.Duration
	// Second is the fresh knock whose door waits for the caller.
	Second ModernResult
}

// KnockReadyModern is KnockReady for modern knocks: it sends a modern
// knock, confirms the door by connecting through it, and sends a second
// knock to the same address from the same source, so that a fresh door
// waits for the caller's connection. The second knock's time is later than
// the first's even if the clock stepped back in between, since a doorman
// refuses a knock whose time is not later than the last it accepted from
// the same key (MODERN-12.9, MODERN-12.17). Errors and waiting are as in
// KnockReady.
func KnockReadyModern(ctx context.Context, o ModernOptions, wait time.Duration) (ModernReady, error) {
	var r ModernReady
	first, err := SendModern(ctx, o)
	if err != nil {
		return r, err
	}
	r.First = first
	r.Opened, err = probe(ctx, first.Dest.Addr(), first.Request.Port, wait)
	if err != nil {
		return r, err
	}

	clock := o.clock()
	last := time.Unix(0, int64(first.Request.Time))
	o.Now = func() time.Time {
		if t := clock(); t.After(last) {
			return t
		}
		return last.Add(time.Nanosecond)
	}
	second, err := o.sendTo(ctx, first.Request.Port, first.Dest, true)
	if err != nil {
		return r, fmt.Errorf("second knock: %w", err)
	}
	r.Second = second
	return r, settleDoor(ctx, r.Opened)
}

// probe confirms that a door to host:port opened by connecting through it
// within wait, and closes that connection, which uses the door up.
func probe(ctx context.Context, host netip.Addr, port uint16, wait time.Duration) (time.Duration, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	c, opened, err := DialOpen(wctx, host, port, 0)
	cancel()
	if err != nil {
		return opened, err
	}
	// DialOpen has ended every other attempt before it returns, so no SYN of
	// the probe is left to claim the fresh door.
	c.Close()
	return opened, nil
}

// settleDoor gives a fresh door as long to open as the first one took (at
// most maxSettle), so that a connection made right away does not arrive
// before it.
func settleDoor(ctx context.Context, opened time.Duration) error {
	t := time.NewTimer(min(opened, maxSettle))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
