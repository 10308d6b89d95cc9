//go:build linux

package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/doorman-project/doorman/conformance/adapter"
	"github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
)

// Scenario constants: the guest, its secret, the knock and service ports.
const (
	scenGuest     = "alice"
	scenSecret    = "s3cretKnock"
	scenKnockPort = doormandtest.KnockPort
	scenSvcPort   = 2222
	scenWaitfor   = 2 * time.Second
)

// scenPolicyDrop is the server's admin ruleset: drop all input except
// established traffic, loopback and packets doormand's door marked.
const scenPolicyDrop = `table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    meta mark & 0x00100000 == 0x00100000 accept
  }
}
`

// doorman is the daemon under test running in a server host behind a
// policy-drop ruleset, with a greeting TCP service on scenSvcPort: the
// built doormand or an implementation its adapter (RunConfig.Impl)
// describes. Its checks read doormand's event stream where the daemon
// writes one; where it does not, they are recorded unsupported and the
// scenario goes on with what it can observe from outside.
type doorman struct {
	dut    daemonUnderTest
	events *doormandtest.Stream // nil: no doormand event stream
	built  *doormandtest.Daemon // the built doormand; nil for an adapter
	impl   *adapter.Adapter     // nil for the built doormand
	r      *Run
	server *netsim.Host

	mu   sync.Mutex
	sent time.Time // when the last knock was sent
}

// daemonUnderTest starts, stops and reconfigures the daemon a scenario
// plays against.
type daemonUnderTest interface {
	// Restart starts the daemon again after a Stop or a Kill and
	// returns once it is ready.
	Restart(ctx context.Context) error
	// Stop asks the daemon to remove its rules and exit, and waits.
	Stop() error
	// Kill kills it with SIGKILL (a crash) and waits.
	Kill() error
	// SetGuests writes the guest list the next start or reload reads.
	SetGuests(guests []adapter.Guest) error
	// Reload makes the daemon re-read its guest list and waits until it
	// says it did (or a fixed delay, if it says nothing).
	Reload(within time.Duration) error
	// Alive reports whether the daemon runs.
	Alive() bool
	// Log returns what the daemon logged (for people, never for checks).
	Log() string
}

// noEvents is the reason event checks are unsupported without a stream.
func (d *doorman) noEvents() string {
	return fmt.Sprintf("needs doormand's event stream, which adapter %s does not declare (doormand_events)", d.impl.Name)
}

// installPolicyDrop loads scenPolicyDrop into h.
func installPolicyDrop(ctx context.Context, r *Run, h *netsim.Host) error {
	cmd := h.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(scenPolicyDrop)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("server ruleset: %w: %s", err, out)
	}
	return nil
}

// setupDoorman installs the ruleset, the service and the configuration in
// server and starts the daemon under test. Guests may knock from allowed.
func setupDoorman(ctx context.Context, r *Run, server *netsim.Host, ifname string, allowed netip.Prefix) (*doorman, error) {
	if err := doormandtest.Serve(ctx, server, netip.AddrPortFrom(server.Addr4(), scenSvcPort)); err != nil {
		return nil, err
	}
	if r.Artifacts != "" {
		// What the server saw, for Wireshark; Net.Close stops the recorder.
		pcap := fmt.Sprintf("%s-%s.pcap", server.Name(), ifname)
		if _, err := server.Record(ifname, pcap); err != nil {
			return nil, err
		}
		r.Step("recording %s %s to %s", server.Name(), ifname, filepath.Join(r.Dir, pcap))
	}
	guests := []adapter.Guest{{Name: scenGuest, Secret: scenSecret, Ports: []int{scenSvcPort}, Networks: []string{allowed.String()}}}
	if r.impl != nil {
		r.Step("server %s: the adapter's admin firewall, service on :%d, guest %s allowed from %s", server.Addr4(), scenSvcPort, scenGuest, allowed)
		return startImpl(ctx, r, server, ifname, guests)
	}
	if err := installPolicyDrop(ctx, r, server); err != nil {
		return nil, err
	}
	r.Step("server %s: policy-drop ruleset, service on :%d, guest %s allowed from %s", server.Addr4(), scenSvcPort, scenGuest, allowed)
	return startDoorman(ctx, r, server, r.Dir, doormandtest.Options{
		Config: doormandtest.Config(ifname, scenWaitfor, "firewall nftables", "nft-table doorman"),
		Guests: guestLines(guests),
	})
}

// guestLines renders guests in doormand's guest-list syntax.
func guestLines(guests []adapter.Guest) string {
	var b strings.Builder
	for _, g := range guests {
		fmt.Fprintf(&b, "%s %s %s %s\n", g.Name, g.Secret, g.PortList(), g.NetworkList())
	}
	return b.String()
}

// errNeedsDoormand is what scenarios that configure doormand itself
// return against an adapter (which Play reports unsupported before that,
// for scenarios that declare NeedDoormand).
var errNeedsDoormand = fmt.Errorf("%w: the scenario configures the built doormand itself", ErrUnsupported)

// startDoorman starts the built doormand in server with o, its files in
// dir. Against an adapter it returns errNeedsDoormand.
func startDoorman(ctx context.Context, r *Run, server *netsim.Host, dir string, o doormandtest.Options) (*doorman, error) {
	if r.impl != nil {
		return nil, errNeedsDoormand
	}
	o.Binary, o.Dir = filepath.Join(r.Bin, "doormand"), dir
	d, err := doormandtest.Start(ctx, server, o)
	if err != nil {
		return nil, err
	}
	r.Step("started doormand in %s (ready: its firewall is in place)", server.Name())
	return &doorman{dut: builtDaemon{d}, events: d.Stream, built: d, r: r, server: server}, nil
}

// builtDaemon is the built doormand as a daemonUnderTest.
type builtDaemon struct{ *doormandtest.Daemon }

func (b builtDaemon) SetGuests(guests []adapter.Guest) error {
	return b.WriteGuests(guestLines(guests))
}
func (b builtDaemon) Alive() bool { return b.Running() }

func (b builtDaemon) Reload(within time.Duration) error {
	_, err := b.Daemon.Reload(within)
	return err
}

// restart starts the daemon again after a stop or a crash.
func (d *doorman) restart(ctx context.Context) error {
	d.r.Step("start the daemon again")
	return d.dut.Restart(ctx)
}

// stop sends the stop signal and waits for the daemon to exit.
func (d *doorman) stop() error {
	d.r.Step("stop the daemon (SIGTERM or the adapter's stop signal)")
	return d.dut.Stop()
}

// kill9 kills the daemon with SIGKILL, leaving whatever it had set up.
func (d *doorman) kill9() error {
	d.r.Step("kill -9 the daemon")
	return d.dut.Kill()
}

// Stop stops the daemon (for deferred stops).
func (d *doorman) Stop() error { return d.dut.Stop() }

// Log returns the daemon's log, for transcripts.
func (d *doorman) Log() string { return d.dut.Log() }

// Events returns doormand's events so far; none without a stream.
func (d *doorman) Events() []doormandtest.Event {
	if d.events == nil {
		return nil
	}
	return d.events.Events()
}

// Count counts the events matching m; 0 without a stream.
func (d *doorman) Count(m doormandtest.Match) int {
	if d.events == nil {
		return 0
	}
	return d.events.Count(m)
}

// Last returns the last event matching m.
func (d *doorman) Last(m doormandtest.Match) (doormandtest.Event, bool) {
	if d.events == nil {
		return doormandtest.Event{}, false
	}
	return d.events.Last(m)
}

// errNoEvents is what Wait returns without an event stream.
var errNoEvents = errors.New("the daemon under test writes no doormand event stream")

// Wait waits for n events matching m (doormandtest.Stream.Wait).
func (d *doorman) Wait(m doormandtest.Match, n int, within time.Duration) ([]doormandtest.Event, error) {
	if d.events == nil {
		return nil, errNoEvents
	}
	return d.events.Wait(m, n, within)
}

// HexDump returns what the built doormand printed with -X.
func (d *doorman) HexDump() string {
	if d.built == nil {
		return ""
	}
	return d.built.HexDump()
}

// Counters asks the built doormand for its counters (SIGUSR1).
func (d *doorman) Counters(within time.Duration) (doormandtest.Event, error) {
	if d.built == nil {
		return doormandtest.Event{}, errNeedsDoormand
	}
	return d.built.Counters(within)
}

// Pid returns the built doormand's process id; 0 for an adapter.
func (d *doorman) Pid() int {
	if d.built == nil {
		return 0
	}
	return d.built.Pid()
}

// settle is how long after a knock a check waits for the daemon to act
// on it when no event stream says that it did. Short: a door's waitfor
// (2 s) runs from the knock.
const settle = 300 * time.Millisecond

// knocked notes that a knock was just sent.
func (d *doorman) knocked() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sent = time.Now()
}

// waitN waits up to within for n events matching m and records a check
// that they came. Without an event stream it records the check
// unsupported, gives the daemon until settle after the last knock to act,
// and returns true so that the scenario goes on with what it can observe.
func (d *doorman) waitN(m doormandtest.Match, n int, within time.Duration, format string, args ...any) bool {
	if d.events == nil {
		d.r.Unsupported(d.noEvents(), format, args...)
		d.mu.Lock()
		wait := time.Until(d.sent.Add(settle))
		d.mu.Unlock()
		time.Sleep(min(wait, within))
		return true
	}
	_, err := d.Wait(m, n, within)
	if err != nil {
		args = append(args, err)
		return d.r.Check(false, format+" (%v)", args...)
	}
	return d.r.Check(true, format, args...)
}

// checkEvents records a check that reads the event stream, or records it
// unsupported without one. ok is called only with a stream.
func (d *doorman) checkEvents(ok func() bool, format string, args ...any) bool {
	if d.events == nil {
		d.r.Unsupported(d.noEvents(), format, args...)
		return true
	}
	return d.r.Check(ok(), format, args...)
}

// gap returns the reason the adapter declares the conformance case id
// unsupported (conformance/README.md, [unsupported]), or "": a scenario
// check that tests the same requirement is then unsupported too.
func (d *doorman) gap(id string) string {
	if d.impl == nil {
		return ""
	}
	if why, ok := d.impl.UnsupportedReason(id); ok {
		return fmt.Sprintf("adapter %s declares %s unsupported: %s", d.impl.Name, id, why)
	}
	return ""
}

// knock runs the knock client in h.
func (d *doorman) knock(ctx context.Context, h *netsim.Host) error {
	return d.knockAs(ctx, h, scenGuest, scenSecret, scenSvcPort)
}

// knockAs runs the knock client in h as guest with secret, asking for port.
func (d *doorman) knockAs(ctx context.Context, h *netsim.Host, guest, secret string, port int) error {
	d.r.Step("knock from %s (%s) as %s for port %d", h.Name(), h.Addr4(), guest, port)
	out, err := h.Command(ctx, filepath.Join(d.r.Bin, "knock"), "-g", guest, "-s", secret,
		d.server.Addr4().String(), fmt.Sprint(port)).CombinedOutput()
	d.knocked()
	if err != nil {
		return fmt.Errorf("knock: %w: %s", err, out)
	}
	return nil
}

// payload makes a knock payload with knock --dry-run without sending it.
func (d *doorman) payload(ctx context.Context) ([]byte, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(d.r.Bin, "knock"), "--dry-run", "-g", scenGuest, "-s", scenSecret,
		d.server.Addr4().String(), fmt.Sprint(scenSvcPort)).Output()
	if err != nil {
		return nil, fmt.Errorf("knock --dry-run: %w", err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return []byte(line), nil
}

// send sends payload raw over UDP from h to the knock port.
func (d *doorman) send(h *netsim.Host, payload []byte) error {
	d.r.Step("send captured payload raw from %s (%s)", h.Name(), h.Addr4())
	return h.Do(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(d.server.Addr4(), scenKnockPort).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		d.knocked()
		return err
	})
}

// dial connects from h to the service and reads its greeting; it returns
// nil when the port is closed (the policy drops the SYN).
func (d *doorman) dial(h *netsim.Host) net.Conn {
	return doormandtest.Dial(h, netip.AddrPortFrom(d.server.Addr4(), scenSvcPort), time.Second, 2*time.Second)
}

// checkClosed records a check that the service port is closed from h.
func (d *doorman) checkClosed(h *netsim.Host) bool {
	return checkClosedAt(d.r, h, netip.AddrPortFrom(d.server.Addr4(), scenSvcPort))
}

// checkClosedAt records a check that dst is closed from h.
func checkClosedAt(r *Run, h *netsim.Host, dst netip.AddrPort) bool {
	c := doormandtest.Dial(h, dst, time.Second, 2*time.Second)
	if c != nil {
		c.Close()
	}
	return r.Check(c == nil, "port %d closed from %s", dst.Port(), h.Name())
}

// doorElements counts the doors in doormand's nftables sets in the server:
// the set elements naming a client.
func (d *doorman) doorElements(ctx context.Context) (int, error) {
	out, err := d.server.Command(ctx, "nft", "-j", "list", "sets", "inet").CombinedOutput()
	if err != nil {
		return -1, fmt.Errorf("nft list sets: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return countSetElements(out, "doorman")
}

// countDoors returns the doors in doormand's nftables sets, or why they
// cannot be counted: the sets are those of the nftables backend the built
// doormand is configured with; an adapter's firewall is the adapter's
// (doormand's other backends keep other sets, with other elements).
func (d *doorman) countDoors(ctx context.Context) (n int, unsupported string, err error) {
	if d.impl != nil {
		return 0, fmt.Sprintf("counts the elements of the built doormand's nftables sets; the firewall of %s is its adapter's", d.impl.Name), nil
	}
	n, err = d.doorElements(ctx)
	return n, "", err
}

// checkDoors records a check on the number of doors in doormand's
// nftables sets (the kernel's view, not the daemon's), or records it
// unsupported where there are no such sets.
func (d *doorman) checkDoors(ctx context.Context, ok func(n int) bool, what string) bool {
	n, why, err := d.countDoors(ctx)
	if why != "" {
		d.r.Unsupported(why, "%s", what)
		return true
	}
	return d.r.Check(err == nil && ok(n), "%s (nft shows %d elements in doorman's sets, err %v)", what, n, err)
}

// pollUntil polls cond every 50ms until it holds or within has passed.
func pollUntil(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
