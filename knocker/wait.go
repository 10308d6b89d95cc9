package knocker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
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
