//go:build linux

package conformance

import (
	"context"
	"errors"
	"fmt"
	"github.com/doorman-project/doorman/conformance/adapter"
	"net/netip"
	"time"
)

// Env is what a case runs against: the topology, the adapters and, for a
// daemon case, a running daemon.
type Env struct {
	ctx         context.Context
	Topo        *Topology
	Impl        *Adapter // daemon adapter (nil in client runs)
	Client      *Adapter // client adapter (nil in daemon runs)
	ArtifactDir string
	WorkDir     string
	Vectors     *Vectors
	// ModernVectors is spec/vectors/modern.json, nil if not found.
	ModernVectors *ModernVectors

	model    Model
	daemon   *adapter.Proc
	starts   int
	notes    []string
	openHost bool             // start without the adapter's preamble
	prepare  func(*Env) error // before the first start
	// values carries what a case's Prepare hands to its Run.
	values map[string]string
	// lastTime is the time of the suite's last modern knock (Unix ns):
	// each one it builds is later than the one before (MODERN-12.9).
	lastTime uint64
}

// Context returns the case's context.
func (e *Env) Context() context.Context { return e.ctx }

// Logf records a note shown with the case's result.
func (e *Env) Logf(format string, args ...any) {
	e.notes = append(e.notes, fmt.Sprintf(format, args...))
}

func (e *Env) server() netip.Addr { return e.Topo.Server.Addr }

// knock sends payload from h to the daemon's knock port.
func (e *Env) knock(h Host, payload string) (int, error) {
	return udpSend(h, e.server(), knockPort, []byte(payload))
}

// knockSettle sends a knock and gives the daemon time to act on it.
func (e *Env) knockSettle(h Host, payload string) error {
	if _, err := e.knock(h, payload); err != nil {
		return err
	}
	time.Sleep(settle)
	return nil
}

// expectOpen checks that a TCP connection from h to port succeeds.
func (e *Env) expectOpen(h Host, port int, why string) error {
	c, err := dialTCP(h, e.server(), port, openTimeout)
	if err != nil {
		return mismatch(fmt.Sprintf("port %d open for %s (%s)", port, h.Addr, why), "connect failed: %v", err)
	}
	c.Close()
	return nil
}

// expectClosed checks that a TCP connection from h to port fails.
func (e *Env) expectClosed(h Host, port int, why string) error {
	c, err := dialTCP(h, e.server(), port, closedTimeout)
	if err == nil {
		c.Close()
		return mismatch(fmt.Sprintf("port %d closed for %s (%s)", port, h.Addr, why), "connection established")
	}
	return nil
}

// control sends a fresh valid knock from the first client and checks that
// the door opens: it proves the daemon is alive and serving, so that a
// "closed" observation before it means a rejection (CLASSIC-4.8).
func (e *Env) control(port int) error {
	if err := e.knockSettle(e.Topo.Client, knockFor(port)); err != nil {
		return err
	}
	if err := e.expectOpen(e.Topo.Client, port, "control knock after the test"); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	return nil
}

// rejected sends payload from h and checks port stays closed for it, with
// the control of closedAndControl.
func (e *Env) rejected(h Host, payload string, port int, why string) error {
	if _, err := e.knock(h, payload); err != nil {
		return err
	}
	return e.closedAndControl(h, port, why)
}

// closedAndControl checks that port stays closed for h while a fresh valid
// knock from another allowed client opens another port for that client,
// at the same time: the daemon is alive and serving, so the closed port is
// a refusal (CLASSIC-4.8). The control uses a port no earlier step of a
// case knocked for, so that it proves only that the daemon serves. Knocks
// sent just before have had the control's settle time and the closed
// probe's to take effect.
func (e *Env) closedAndControl(h Host, port int, why string) error {
	other := e.Topo.Client
	if h == e.Topo.Client {
		other = e.Topo.Client2
	}
	cport := portB
	if port == portB {
		cport = portA
	}
	if _, err := e.knock(other, knockFor(cport)); err != nil {
		return err
	}
	time.Sleep(settle)
	var closed, control error
	done := make(chan struct{})
	go func() { defer close(done); closed = e.expectClosed(h, port, why) }()
	if err := e.expectOpen(other, cport, "control knock"); err != nil {
		control = fmt.Errorf("control: %w", err)
	}
	<-done
	return errors.Join(closed, control)
}
