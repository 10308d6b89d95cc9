//go:build linux

package conformance

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cases for section 6: doors.
func doorCases() []*Case {
	return []*Case{
		{ID: "6.1/opens-exactly-requested", Requirement: "CLASSIC-6.1", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock opens the requested port for the knocking address only: not another allowed port, not another allowed host, not a foreign host",
			Run:         runExactly},
		{ID: "6.2/single-connection", Requirement: "CLASSIC-6.2/1", Level: "MUST", Target: TargetDaemon,
			Description: "while the door's first connection is up, a second connection from another source port is refused",
			Run:         runSingle},
		{ID: "6.3/waitfor-expiry", Requirement: "CLASSIC-6.3", Level: "MUST", Target: TargetDaemon,
			Description: "with no SYN for waitfor+1 s after the knock, the door is closed",
			Run: func(e *Env) error {
				if _, err := e.knock(e.Topo.Client, knockFor(portA)); err != nil {
					return err
				}
				time.Sleep(time.Duration(waitForSec+1) * time.Second)
				return e.expectClosed(e.Topo.Client, portA, "waitfor expired")
			}},
		{ID: "6.6/close-after-connection-ends", Requirement: "CLASSIC-6.6/1", Level: "MUST", Target: TargetDaemon,
			Description: "after the door's connection ends, connection-delay-2+1.5 s later a new connection from the same source port fails",
			Run:         runCloseAfter},
		{ID: "6.7/independent-doors", Requirement: "CLASSIC-6.7", Level: "MUST", Target: TargetDaemon,
			Description: "two accepted knocks from one address for one port give two doors: two connections",
			Run:         runTwoDoors},
		{ID: "6.8/rules-removed-on-shutdown", Requirement: "CLASSIC-6.8", Level: "MUST", Target: TargetDaemon,
			Description: "a door opened before the stop signal is closed after the daemon exits",
			Run: func(e *Env) error {
				if err := e.knockSettle(e.Topo.Client, knockFor(portA)); err != nil {
					return err
				}
				if err := e.StopDaemon(); err != nil {
					return err
				}
				return e.expectClosed(e.Topo.Client, portA, "daemon stopped with a broad door open")
			}},
		{ID: "6.9/leftovers-removed-at-start", Requirement: "CLASSIC-6.9", Level: "MUST", Target: TargetDaemon,
			Description: "a door left by a run killed with SIGKILL is closed once the daemon is started again",
			Run: func(e *Env) error {
				if err := e.knockSettle(e.Topo.Client, knockFor(portA)); err != nil {
					return err
				}
				if err := e.KillDaemon(); err != nil {
					return err
				}
				if err := e.StartDaemon(false); err != nil {
					return err
				}
				if err := e.expectClosed(e.Topo.Client, portA, "broad door of the killed run"); err != nil {
					return err
				}
				return e.control(portA)
			}},
	}
}

func runExactly(e *Env) error {
	t := e.Topo
	if err := e.knockSettle(t.Client, knockFor(portA)); err != nil {
		return err
	}
	checks := []struct {
		h    Host
		port int
		why  string
	}{
		{t.Client, portB, "another port alice may open, not requested"},
		{t.Client2, portA, "another allowed host that did not knock"},
		{t.Foreign, portA, "a foreign host"},
	}
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = e.expectClosed(c.h, c.port, c.why) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return e.expectOpen(t.Client, portA, "the knocked port")
}

func runSingle(e *Env) error {
	if err := e.knockSettle(e.Topo.Client, knockFor(portA)); err != nil {
		return err
	}
	c1, err := dialTCP(e.Topo.Client, e.server(), portA, openTimeout)
	if err != nil {
		return mismatch("first connection established", "%v", err)
	}
	defer c1.Close()
	c2, err := dialTCP(e.Topo.Client, e.server(), portA, closedTimeout)
	if err == nil {
		c2.Close()
		return mismatch("second connection from another source port refused", "it was established (first from %s, second from %s)", c1.LocalAddr(), c2.LocalAddr())
	}
	return nil
}

func runTwoDoors(e *Env) error {
	if err := e.knock2(knockFor(portA), knockFor(portA)); err != nil {
		return err
	}
	c1, err := dialTCP(e.Topo.Client, e.server(), portA, openTimeout)
	if err != nil {
		return mismatch("first of two doors admits a connection", "%v", err)
	}
	defer c1.Close()
	c2, err := dialTCP(e.Topo.Client, e.server(), portA, openTimeout)
	if err != nil {
		return mismatch("second of two doors admits a second connection", "%v", err)
	}
	c2.Close()
	return nil
}

func (e *Env) knock2(a, b string) error {
	if _, err := e.knock(e.Topo.Client, a); err != nil {
		return err
	}
	return e.knockSettle(e.Topo.Client, b)
}

// dialFromPort connects from a fixed source port with SO_REUSEADDR, so the
// same 4-tuple can be tried again after an abortive close.
func dialFromPort(h Host, dst netip.Addr, port, sport int, timeout time.Duration) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{Port: sport},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
			return errors.Join(err, serr)
		}}
	conn, err := dialWith(h, d, dst, port, timeout)
	if err != nil {
		return nil, err
	}
	return conn.(*net.TCPConn), nil
}

func runCloseAfter(e *Env) error {
	if err := e.knockSettle(e.Topo.Client, knockFor(portA)); err != nil {
		return err
	}
	sport := 20000 + rand.IntN(30000)
	c, err := dialFromPort(e.Topo.Client, e.server(), portA, sport, openTimeout)
	if err != nil {
		return mismatch("door admits the connection", "%v", err)
	}
	_, _ = c.Write([]byte("hello\n"))
	time.Sleep(100 * time.Millisecond)
	// An abortive close (RST) ends the connection at both ends at once and
	// leaves no TIME-WAIT, so the same source port can be tried again.
	_ = c.SetLinger(0)
	c.Close()
	time.Sleep(time.Duration(connDelay2Sec)*time.Second + 1500*time.Millisecond)
	c2, err := dialFromPort(e.Topo.Client, e.server(), portA, sport, closedTimeout)
	if err == nil {
		c2.SetLinger(0)
		c2.Close()
		return mismatch("narrow rule removed after the connection ended", "a new connection from source port %d was established %v later", sport, time.Duration(connDelay2Sec)*time.Second+1500*time.Millisecond)
	}
	return nil
}
