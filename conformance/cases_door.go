//go:build linux

package conformance

import (
	"errors"
	"fmt"
	"io"
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
			Description: "while the door's first connection is up, a second connection from another source port is refused, and the first still carries data after that dropped SYN",
			Also:        []string{"CLASSIC-6.4"},
			Run:         runSingle},
		{ID: "6.4/early-syn-ignored", Requirement: "CLASSIC-6.4", Level: "MUST", Target: TargetDaemon,
			Description: "a SYN the firewall dropped just before the knock does not select the door's port: a connection from another source port right after the knock gets in",
			Run:         runEarlySYN},
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
			Also:        []string{"CLASSIC-6.5/3"},
			Description: "a connection of 100 ms (it ends before connection-delay-1, so before the first check can see it): connection-delay-2+1.5 s after its end a new connection from the same source port fails",
			Run:         runCloseAfter},
		{ID: "6.6/close-after-long-connection", Requirement: "CLASSIC-6.6/2", Level: "MUST", Target: TargetDaemon,
			Description: "a connection held 3×connection-delay-1 and then reset: connection-delay-2+1 s after its end a new connection from the same source port fails",
			Also:        []string{"CLASSIC-6.6/1"},
			Run:         runCloseAfterLong},
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
			Also:        []string{"CLASSIC-6.9/2"},
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
				return e.closedAndControl(e.Topo.Client, portA, "broad door of the killed run")
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
	// The dropped SYN changed nothing (CLASSIC-6.4): the door still
	// belongs to the first connection.
	if err := echo(c1, "still there?"); err != nil {
		return mismatch("the first connection still carries data after the second was refused", "%v", err)
	}
	return nil
}

// echo sends msg on c and reads it back from the suite's echoing listener.
func echo(c net.Conn, msg string) error {
	_ = c.SetDeadline(time.Now().Add(openTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

func runEarlySYN(e *Env) error {
	// One SYN, dropped by the admin firewall; closing the socket before
	// the kernel's retransmission (1 s) keeps it at one.
	early := 20000 + rand.IntN(30000)
	if c, err := dialFromPort(e.Topo.Client, e.server(), portA, early, 150*time.Millisecond); err == nil {
		c.Close()
		return setupErr(fmt.Errorf("port %d is open before any knock: the preamble does not close it", portA))
	}
	if err := e.knockSettle(e.Topo.Client, knockFor(portA)); err != nil {
		return err
	}
	c, err := dialTCP(e.Topo.Client, e.server(), portA, openTimeout)
	if err != nil {
		return mismatch(fmt.Sprintf("a connection right after the knock admitted (the SYN from port %d before it was dropped and selects nothing)", early),
			"connect failed: %v", err)
	}
	c.Close()
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

// endBound is how soon after connection-delay-2 a door must be closed once
// its connection ended (CLASSIC-6.6/2).
const endBound = time.Second

// runCloseAfterLong holds the connection well past connection-delay-1, so
// a daemon sees it established before it ends; the end must then be seen
// within connection-delay-2 plus the bound. (With a short connection a
// daemon that never notices ends passes: the connection is gone before
// its first check and the door closes as never established.)
func runCloseAfterLong(e *Env) error {
	if err := e.knockSettle(e.Topo.Client, knockFor(portA)); err != nil {
		return err
	}
	sport := 20000 + rand.IntN(30000)
	c, err := dialFromPort(e.Topo.Client, e.server(), portA, sport, openTimeout)
	if err != nil {
		return mismatch("door admits the connection", "%v", err)
	}
	hold := 3 * time.Duration(e.model.ConnDelay1) * time.Microsecond
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(hold / 4) {
		if err := echo(c, "alive"); err != nil {
			c.Close()
			return mismatch(fmt.Sprintf("the connection carries data for %v", hold), "%v", err)
		}
	}
	_ = c.SetLinger(0)
	c.Close()
	wait := time.Duration(e.model.ConnDelay2)*time.Second + endBound
	time.Sleep(wait)
	c2, err := dialFromPort(e.Topo.Client, e.server(), portA, sport, closedTimeout)
	if err == nil {
		c2.SetLinger(0)
		c2.Close()
		return mismatch(fmt.Sprintf("door closed within connection-delay-2 + %v (%v) after a connection of %v ended", endBound, wait, hold),
			"a new connection from source port %d was established %v after the end", sport, wait)
	}
	return nil
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
