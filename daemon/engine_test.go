package daemon

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/protocol"
)

// chanSource is a PacketSource fed by the test.
type chanSource struct {
	ch     chan capture.Packet
	closed chan struct{}
	once   sync.Once
}

func newChanSource() *chanSource {
	return &chanSource{ch: make(chan capture.Packet, 64), closed: make(chan struct{})}
}

func (s *chanSource) Read(p *capture.Packet) error {
	select {
	case x := <-s.ch:
		*p = x
		return nil
	case <-s.closed:
		return net.ErrClosed
	}
}

func (s *chanSource) Close() error { s.once.Do(func() { close(s.closed) }); return nil }

// fakeConns is a ConnTracker whose connections the test sets.
type fakeConns struct {
	mu sync.Mutex
	m  map[[2]netip.AddrPort]ConnState
}

func (f *fakeConns) set(local, remote netip.AddrPort, s ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[[2]netip.AddrPort]ConnState{}
	}
	f.m[[2]netip.AddrPort{local, remote}] = s
}

func (f *fakeConns) State(local, remote netip.AddrPort) ConnState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[[2]netip.AddrPort{local, remote}]
}

func (f *fakeConns) FindFrom(local netip.AddrPort, src netip.Addr) (uint16, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.m {
		if k[0] == local && k[1].Addr() == src {
			return k[1].Port(), true
		}
	}
	return 0, false
}

var (
	server = netip.MustParseAddr("198.18.0.1")
	client = netip.MustParseAddr("198.18.0.2")
	other  = netip.MustParseAddr("198.18.0.3")
	alien  = netip.MustParseAddr("198.19.9.9")
)

type harness struct {
	t      *testing.T
	src    *chanSource
	fw     *firewall.Fake
	conns  *fakeConns
	store  *replay.Store
	eng    *Engine
	events chan DoorEvent
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func newHarness(t *testing.T, s Settings) *harness {
	t.Helper()
	store, err := replay.Open(filepath.Join(t.TempDir(), "replay"), replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, src: newChanSource(), fw: firewall.NewFake(), conns: &fakeConns{}, store: store,
		events: make(chan DoorEvent, 64), done: make(chan error, 1)}
	guests := NewGuests([]protocol.Guest{{
		Name: "alice", Secret: protocol.Secret("s3cretKnock"), Ports: []uint16{22, 2222},
		Nets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")},
	}})
	h.eng = New(Options{Settings: s, Guests: guests, Source: h.src, Firewall: h.fw, Replay: store, Conns: h.conns,
		OnDoor: func(e DoorEvent) { h.events <- e }})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.eng.Run(ctx) }()
	t.Cleanup(func() { h.stop(); store.Close() })
	return h
}

func (h *harness) stop() {
	h.once.Do(func() {
		h.cancel()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			h.t.Error("engine did not stop")
		}
	})
}

func settings() Settings {
	return Settings{Interface: "eth0", WaitFor: 200 * time.Millisecond, Delay1: 300 * time.Millisecond,
		Delay2: 20 * time.Millisecond, SYNFromCapture: true}
}

func knock(t *testing.T, port uint16, group, secret string) []byte {
	k, err := protocol.NewKnock(port, group, rand.Uint32(), []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k.AppendPayload(nil)
}

func (h *harness) sendUDP(src netip.Addr, payload []byte) {
	h.src.ch <- capture.Packet{Src: src, Dst: server, SrcPort: 40000, DstPort: 1001,
		Payload: payload}
}

func (h *harness) sendSYN(src netip.Addr, sport, dport uint16) {
	h.eng.handleSYN(synPacket{src: src, dst: server, sport: sport, dport: dport})
}

func (h *harness) expect(state DoorState) DoorEvent {
	h.t.Helper()
	select {
	case e := <-h.events:
		if e.State != state {
			h.t.Fatalf("door event %v (%s), want %v", e.State, e.Why, state)
		}
		return e
	case <-time.After(5 * time.Second):
		h.t.Fatalf("no door event, want %v", state)
	}
	return DoorEvent{}
}

func (h *harness) noEvent(wait time.Duration) {
	h.t.Helper()
	select {
	case e := <-h.events:
		h.t.Fatalf("unexpected door event %+v", e)
	case <-time.After(wait):
	}
}

func rulesEqual(t *testing.T, fw *firewall.Fake, want ...firewall.Rule) {
	t.Helper()
	got := fw.Rules()
	if len(got) != len(want) {
		t.Fatalf("rules %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("rules %v, want %v", got, want)
		}
	}
}

// TestDoorLifecycle walks one door through every state (CLASSIC-6.1,
// CLASSIC-6.4, CLASSIC-6.5, CLASSIC-6.6/1: removed after the connection
// ends, CLASSIC-6.6/2: checked every connection-delay-2).
func TestDoorLifecycle(t *testing.T) {
	h := newHarness(t, settings())
	h.sendUDP(client, knock(t, 2222, "alice", "s3cretKnock"))
	h.expect(DoorBroad)
	broad := firewall.Rule{Iface: "eth0", Src: client, Dst: server, DstPort: 2222}
	rulesEqual(t, h.fw, broad)

	local, remote := netip.AddrPortFrom(server, 2222), netip.AddrPortFrom(client, 50000)
	h.conns.set(local, remote, ConnEstablished)
	h.sendSYN(client, 50000, 2222)
	h.sendSYN(client, 50001, 2222) // a second SYN goes to no door
	e := h.expect(DoorNarrow)
	if e.SrcPort != 50000 {
		t.Fatalf("narrow for source port %d, want the first SYN's 50000", e.SrcPort)
	}
	narrow := broad
	narrow.SrcPort = 50000
	rulesEqual(t, h.fw, narrow)
	h.expect(DoorOpen)
	// Narrow added before broad removed (CLASSIC-6.4).
	calls := h.fw.Calls()
	if len(calls) < 3 || calls[1].Op != "add" || calls[1].Rule != narrow || calls[2].Op != "delete" || calls[2].Rule != broad {
		t.Fatalf("calls %+v: want add narrow then delete broad", calls)
	}
	h.conns.set(local, remote, ConnEnded)
	if e := h.expect(DoorClosed); e.Why != "connection-ended" {
		t.Fatalf("closed because %q", e.Why)
	}
	rulesEqual(t, h.fw)
}

// TestWaitforExpiry: no SYN, broad rule removed after waitfor (CLASSIC-6.3).
func TestWaitforExpiry(t *testing.T) {
	h := newHarness(t, settings())
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorBroad)
	if e := h.expect(DoorClosed); e.Why != "waitfor" {
		t.Fatalf("closed because %q", e.Why)
	}
	rulesEqual(t, h.fw)
}

// TestNotEstablished: a SYN whose connection never establishes closes the
// door after connection-delay-1 (CLASSIC-6.5).
func TestNotEstablished(t *testing.T) {
	h := newHarness(t, settings())
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorBroad)
	h.conns.set(netip.AddrPortFrom(server, 22), netip.AddrPortFrom(client, 50000), ConnHandshake)
	h.sendSYN(client, 50000, 22)
	h.expect(DoorNarrow)
	if e := h.expect(DoorClosed); e.Why != "not-established" {
		t.Fatalf("closed because %q", e.Why)
	}
	rulesEqual(t, h.fw)
}

// TestDroppedSYNIgnored: a SYN the kernel dropped (it came before the broad
// rule, or capture read it late) has no socket and must not narrow the door
// to a dead port; the next SYN that got in does (CLASSIC-6.4).
func TestDroppedSYNIgnored(t *testing.T) {
	h := newHarness(t, settings())
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorBroad)
	h.sendSYN(client, 40000, 22) // no socket: dropped
	h.conns.set(netip.AddrPortFrom(server, 22), netip.AddrPortFrom(client, 40001), ConnEstablished)
	h.sendSYN(client, 40001, 22)
	if e := h.expect(DoorNarrow); e.SrcPort != 40001 {
		t.Fatalf("narrowed to %d, want 40001", e.SrcPort)
	}
}

// TestSYNReceiveTime: with kernel receive times, a SYN received before the
// broad rule was being added is ignored even if the kernel table has its
// port (say, from a later retry), and one received after the rule was in
// force is taken without asking the kernel (CLASSIC-6.4).
func TestSYNReceiveTime(t *testing.T) {
	h := newHarness(t, settings())
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorBroad)
	h.conns.set(netip.AddrPortFrom(server, 22), netip.AddrPortFrom(client, 40000), ConnEstablished)
	syn := func(sport uint16, at time.Time) {
		h.eng.handleSYN(synPacket{src: client, dst: server, sport: sport, dport: 22, at: at})
	}
	syn(40000, time.Now().Add(-time.Hour))
	syn(40001, time.Now().Add(time.Hour))
	if e := h.expect(DoorNarrow); e.SrcPort != 40001 {
		t.Fatalf("narrowed to %d, want 40001", e.SrcPort)
	}
}

// TestRejections: each failed check is counted under its reason and opens
// nothing (CLASSIC-4.1, CLASSIC-4.5/3).
func TestRejections(t *testing.T) {
	h := newHarness(t, settings())
	valid := knock(t, 22, "alice", "s3cretKnock")
	cases := []struct {
		src     netip.Addr
		payload []byte
		reason  Reason
	}{
		{client, []byte("2222 somebody 1234567890"), ReasonMalformed}, // crashed 0.81
		{client, []byte("hello"), ReasonNotClassic},
		{client, append([]byte{protocol.ModernMagic}, valid[1:]...), ReasonModern},
		{client, knock(t, 22, "mallory", "x"), ReasonUnknownGuest},
		{client, knock(t, 80, "alice", "s3cretKnock"), ReasonPort},
		{alien, knock(t, 22, "alice", "s3cretKnock"), ReasonAddress},
		{client, knock(t, 22, "alice", "wrong"), ReasonMAC},
	}
	for _, c := range cases {
		h.sendUDP(c.src, c.payload)
	}
	h.sendUDP(client, valid) // still served after all that (CLASSIC-4.8)
	h.expect(DoorBroad)
	for _, c := range cases {
		if h.eng.Counters().Get(c.reason) == 0 {
			t.Errorf("reason %v not counted", c.reason)
		}
	}
}

// TestReplayRefused: the same knock is refused from the same and from
// another allowed address (CLASSIC-5.1); its identity is the digest, so an
// upper-case spelling is the same knock (CLASSIC-5.2).
func TestReplayRefused(t *testing.T) {
	h := newHarness(t, settings())
	p := knock(t, 22, "alice", "s3cretKnock")
	h.sendUDP(client, p)
	h.expect(DoorBroad)
	h.sendUDP(client, p)
	h.sendUDP(other, p)
	upper := append([]byte(nil), p...)
	for i := len(upper) - 32; i < len(upper); i++ {
		if upper[i] >= 'a' && upper[i] <= 'f' {
			upper[i] -= 'a' - 'A'
		}
	}
	h.sendUDP(other, upper) // a case variant is the same knock (CLASSIC-2.5)
	h.expect(DoorClosed)    // waitfor of the first door
	h.noEvent(100 * time.Millisecond)
	if n := h.eng.Counters().Get(ReasonReplay); n != 3 {
		t.Fatalf("replays counted %d, want 3", n)
	}
}

// TestTwoDoorsIndependent: two knocks, two doors, each its own connection
// (CLASSIC-6.7).
func TestTwoDoorsIndependent(t *testing.T) {
	h := newHarness(t, Settings{Interface: "any", WaitFor: 5 * time.Second, Delay1: time.Second,
		Delay2: 20 * time.Millisecond, SYNFromCapture: true})
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorBroad)
	h.expect(DoorBroad)
	local := netip.AddrPortFrom(server, 22)
	h.conns.set(local, netip.AddrPortFrom(client, 1111), ConnEstablished)
	h.conns.set(local, netip.AddrPortFrom(client, 2222), ConnEstablished)
	h.sendSYN(client, 1111, 22)
	h.sendSYN(client, 2222, 22)
	ports := map[uint16]bool{}
	for range 2 {
		ports[h.expect(DoorNarrow).SrcPort] = true
		h.expect(DoorOpen)
	}
	if !ports[1111] || !ports[2222] {
		t.Fatalf("narrow doors for %v", ports)
	}
	if r := h.fw.Rules(); len(r) != 2 || r[0].Iface != "" {
		t.Fatalf("rules %v: want two narrow rules without interface match for \"any\"", r)
	}
}

// TestShutdownClosesDoors: stopping removes every rule (CLASSIC-6.8).
func TestShutdownClosesDoors(t *testing.T) {
	h := newHarness(t, Settings{WaitFor: time.Minute, SYNFromCapture: true})
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorBroad)
	h.stop()
	if e := h.expect(DoorClosed); e.Why != "shutdown" {
		t.Fatalf("closed because %q", e.Why)
	}
	rulesEqual(t, h.fw)
}

// TestFirewallErrors: a failed add is logged and the next knock still
// works; a failed delete is retried until it succeeds (CLASSIC-6.10).
func TestFirewallErrors(t *testing.T) {
	h := newHarness(t, settings())
	h.fw.FailNext(errors.New("injected add failure"))
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	if e := h.expect(DoorClosed); e.Why != "firewall-error" {
		t.Fatalf("closed because %q", e.Why)
	}
	rulesEqual(t, h.fw)

	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorBroad)
	h.fw.FailNext(errors.New("injected delete failure"))
	h.expect(DoorClosed) // waitfor; the delete failed
	if len(h.fw.Rules()) != 1 {
		t.Fatalf("rules %v: the failed delete should have left the broad rule", h.fw.Rules())
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(h.fw.Rules()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("stuck rule never retried")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadKeepsDoors: a reload changes guests at once and leaves open
// doors alone (CLASSIC-6.11).
func TestReloadKeepsDoors(t *testing.T) {
	h := newHarness(t, Settings{WaitFor: time.Minute, SYNFromCapture: true})
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorBroad)
	h.eng.Reload(settings(), NewGuests([]protocol.Guest{{Name: "bob", Secret: protocol.Secret("b0b"),
		Ports: []uint16{22}, Nets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}}}))
	h.sendUDP(client, knock(t, 22, "bob", "b0b"))
	h.expect(DoorBroad)
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorClosed) // bob's door, after the new 200 ms waitfor
	h.noEvent(300 * time.Millisecond)
	if h.eng.OpenDoors() != 1 {
		t.Fatalf("open doors %d, want alice's door still open", h.eng.OpenDoors())
	}
	if h.eng.Counters().Get(ReasonUnknownGuest) != 1 {
		t.Fatal("alice not unknown after reload")
	}
}

// TestJunkNeverCrashes feeds random datagrams (CLASSIC-4.8).
func TestJunkNeverCrashes(t *testing.T) {
	h := newHarness(t, settings())
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		b := make([]byte, r.IntN(100))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		if len(b) > 0 && r.IntN(2) == 0 {
			b[0] = '2'
		}
		h.sendUDP(client, b)
	}
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorBroad)
}

// BenchmarkVerifyPipeline measures the engine's per-knock cost for junk
// and for valid-format knocks with a bad MAC, without I/O.
func BenchmarkVerifyPipeline(b *testing.B) {
	guests := NewGuests([]protocol.Guest{{Name: "alice", Secret: protocol.Secret("s3cretKnock"),
		Ports: []uint16{22}, Nets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}}})
	e := New(Options{Guests: guests})
	e.limit.rate, e.limit.burst = 0, 0
	k, _ := protocol.NewKnock(22, "alice", 7, []byte("wrong"))
	p := capture.Packet{Src: client, Dst: server, DstPort: 1001, Payload: k.AppendPayload(nil)}
	var kk protocol.Knock
	b.ReportAllocs()
	for b.Loop() {
		e.handleKnock(context.Background(), &p, &kk)
	}
}

// errSource returns each of errs once, then behaves like src.
type errSource struct {
	*chanSource
	errs []error
}

func (s *errSource) Read(p *capture.Packet) error {
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return err
	}
	return s.chanSource.Read(p)
}

// TestFrameDropsCounted: packets the capture drops (options, fragments,
// not addressed to us, ...) are counted by reason and the engine goes on
// (CLASSIC-4.3, CLASSIC-4.4, CLASSIC-4.5/3).
func TestFrameDropsCounted(t *testing.T) {
	src := &errSource{chanSource: newChanSource(), errs: []error{capture.ErrIPOptions, capture.ErrFragment,
		capture.ErrFragment, capture.ErrNotLocal, capture.ErrTruncated, capture.ErrNotCandidate, capture.ErrChecksum,
		capture.ErrMartian}}
	eng := New(Options{Settings: settings(), Source: src, Firewall: firewall.NewFake()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.RoutineReceive(ctx) }()
	src.ch <- capture.Packet{Src: client, Dst: server, DstPort: 1001, Payload: []byte("junk")}
	deadline := time.Now().Add(5 * time.Second)
	for eng.Counters().Get(ReasonNotClassic) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	src.Close()
	if err := <-done; err != nil {
		t.Fatalf("RoutineReceive: %v", err)
	}
	want := map[Reason]uint64{ReasonIPOptions: 1, ReasonFragment: 2, ReasonNotLocal: 1, ReasonTruncated: 1,
		ReasonNotCandidate: 1, ReasonNotClassic: 1, ReasonChecksum: 1, ReasonMartian: 1}
	for r, n := range want {
		if got := eng.Counters().Get(r); got != n {
			t.Errorf("%v counted %d, want %d", r, got, n)
		}
	}
}
