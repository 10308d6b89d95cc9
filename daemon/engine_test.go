package daemon

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
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
	events chan Event
	knocks chan Event // knock events; dropped when nobody reads them
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func alice() []protocol.Guest {
	return []protocol.Guest{{
		Name: "alice", Secret: protocol.Secret("s3cretKnock"), Ports: []uint16{22, 2222},
		Nets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")},
	}}
}

func newHarness(t *testing.T, s Settings) *harness { return newHarnessWith(t, s, nil) }

// newHarnessWith is newHarness with the engine's options changed by opt
// before it starts.
func newHarnessWith(t *testing.T, s Settings, opt func(*Options)) *harness {
	t.Helper()
	store, err := replay.Open(filepath.Join(t.TempDir(), "replay"), replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, src: newChanSource(), fw: firewall.NewFake(), conns: &fakeConns{}, store: store,
		events: make(chan Event, 256), knocks: make(chan Event, 1024), done: make(chan error, 1)}
	ready := make(chan struct{})
	o := Options{Settings: s, Guests: NewGuests(alice()), Source: h.src, Firewall: h.fw, Replay: store, Conns: h.conns,
		Events: func(e Event) {
			switch e.Kind {
			case EventReady:
				close(ready)
			case EventDoor:
				h.events <- e
			case EventKnock:
				select {
				case h.knocks <- e:
				default:
				}
			}
		}}
	if opt != nil {
		opt(&o)
	}
	h.eng = New(o)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.eng.Run(ctx) }()
	t.Cleanup(func() { h.stop(); store.Close() })
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("engine never ready")
	}
	return h
}

func (h *harness) stop() {
	h.once.Do(func() {
		h.cancel()
		select {
		case err := <-h.done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			h.t.Error("engine did not stop")
		}
	})
}

func settings() Settings {
	return Settings{Interface: "eth0", WaitFor: 300 * time.Millisecond, Delay1: 200 * time.Millisecond,
		Delay2: 20 * time.Millisecond}
}

func knock(t testing.TB, port uint16, group, secret string) []byte {
	k, err := protocol.NewKnock(port, group, rand.Uint32(), []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k.AppendPayload(nil)
}

func (h *harness) sendUDP(src netip.Addr, payload []byte) {
	h.src.ch <- capture.Packet{Src: src, Dst: server, SrcPort: 40000, DstPort: 1001, Payload: payload}
}

// claim plays the kernel: the SYN from src:sport to port claimed a door.
func (h *harness) claim(src netip.Addr, sport, port uint16) {
	h.fw.Claim(firewall.Claim{Src: src, Dst: server, SrcPort: sport, Port: port, Time: time.Now()})
}

func (h *harness) expect(state DoorState) Event {
	h.t.Helper()
	select {
	case e := <-h.events:
		if e.State != state {
			h.t.Fatalf("door %d event %v (%v), want %v", e.Door, e.State, e.Why, state)
		}
		return e
	case <-time.After(5 * time.Second):
		h.t.Fatalf("no door event, want %v", state)
	}
	return Event{}
}

// expectEach waits for one event of each state, in any order.
func (h *harness) expectEach(states ...DoorState) {
	h.t.Helper()
	want := map[DoorState]int{}
	for _, s := range states {
		want[s]++
	}
	for range states {
		select {
		case e := <-h.events:
			if want[e.State] == 0 {
				h.t.Fatalf("door %d event %v (%v), want %v", e.Door, e.State, e.Why, states)
			}
			want[e.State]--
		case <-time.After(5 * time.Second):
			h.t.Fatalf("missing door events, want %v", states)
		}
	}
}

func (h *harness) expectClosed(why CloseReason) Event {
	h.t.Helper()
	e := h.expect(DoorClosed)
	if e.Why != why {
		h.t.Fatalf("door %d closed because %v, want %v", e.Door, e.Why, why)
	}
	return e
}

func (h *harness) noEvent(wait time.Duration) {
	h.t.Helper()
	select {
	case e := <-h.events:
		h.t.Fatalf("unexpected door event %+v", e)
	case <-time.After(wait):
	}
}

// fwDoors asserts what the firewall holds.
func fwDoors(t *testing.T, fw *firewall.Fake, want ...firewall.DoorState) []firewall.Door {
	t.Helper()
	got := fw.Doors()
	if len(got) != len(want) {
		t.Fatalf("firewall holds %+v, want states %v", got, want)
	}
	for i := range want {
		if got[i].State != want[i] {
			t.Fatalf("firewall holds %+v, want states %v", got, want)
		}
	}
	return got
}

// TestDoorLifecycle walks one door through every state (CLASSIC-6.1,
// CLASSIC-6.4, CLASSIC-6.5, CLASSIC-6.6/1: removed after the connection
// ends, CLASSIC-6.6/2: checked every connection-delay-2).
func TestDoorLifecycle(t *testing.T) {
	h := newHarness(t, settings())
	h.sendUDP(client, knock(t, 2222, "alice", "s3cretKnock"))
	h.expect(DoorArmed)
	d := fwDoors(t, h.fw, firewall.DoorArmed)[0]
	if d.Src != client || d.Dst != server || d.Port != 2222 || d.SrcPort != 0 || d.Iface != "eth0" {
		t.Fatalf("armed %+v", d)
	}

	local, remote := netip.AddrPortFrom(server, 2222), netip.AddrPortFrom(client, 50000)
	h.conns.set(local, remote, ConnEstablished)
	h.claim(client, 50000, 2222)
	if e := h.expect(DoorNarrow); e.SrcPort != 50000 {
		t.Fatalf("narrow to %d", e.SrcPort)
	}
	h.expect(DoorOpen)
	if d := fwDoors(t, h.fw, firewall.DoorNarrow)[0]; d.SrcPort != 50000 {
		t.Fatalf("narrow door %+v", d)
	}
	h.noEvent(100 * time.Millisecond) // still open while the connection lives
	h.conns.set(local, remote, ConnClosed)
	h.expectClosed(CloseConnectionEnded)
	fwDoors(t, h.fw)
	if h.eng.OpenDoors() != 0 {
		t.Fatalf("open doors %d", h.eng.OpenDoors())
	}
}

// TestWaitforExpiry: nobody comes, the door closes (CLASSIC-6.3).
func TestWaitforExpiry(t *testing.T) {
	h := newHarness(t, settings())
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorArmed)
	h.expectClosed(CloseWaitFor)
	fwDoors(t, h.fw)
}

// bufferedSource is a chanSource that always has more packets at hand, so
// that every door goes through routineDoors.
type bufferedSource struct{ *chanSource }

func (bufferedSource) Buffered() bool { return true }

// TestDoorHandedOver: with more packets at hand the receive routine hands
// the door to routineDoors, which arms and expires it (CLASSIC-6.3).
func TestDoorHandedOver(t *testing.T) {
	h := newHarnessWith(t, settings(), func(o *Options) { o.Source = bufferedSource{o.Source.(*chanSource)} })
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorArmed)
	fwDoors(t, h.fw, firewall.DoorArmed)
	h.expectClosed(CloseWaitFor)
	fwDoors(t, h.fw)
}

// TestRequestDoor: an idle door loop lets the knock's routine arm the door
// itself, after the requests handed over before it; with more knocks to
// follow, or the loop busy, the request is handed over.
func TestRequestDoor(t *testing.T) {
	fw := firewall.NewFake()
	e := New(Options{Settings: settings(), Firewall: fw})
	if err := fw.Start(context.Background(), e.notify()); err != nil {
		t.Fatal(err)
	}
	e.loop = newDoorLoop(e)
	req := func(i byte) doorRequest {
		return doorRequest{src: netip.AddrFrom4([4]byte{198, 18, 0, i}), dst: server, port: 22, group: "alice", at: time.Now()}
	}
	e.newDoors <- req(1) // handed over earlier, not taken yet
	e.requestDoor(req(2), false)
	doors := fw.Doors()
	if len(doors) != 2 || len(e.newDoors) != 0 || e.OpenDoors() != 2 {
		t.Fatalf("after arming in place: firewall %+v, %d waiting, %d open", doors, len(e.newDoors), e.OpenDoors())
	}
	for i, d := range doors {
		if d.ID != uint64(i+1) || d.Src != req(byte(i+1)).src || d.State != firewall.DoorArmed {
			t.Errorf("door %d = %+v: not armed in the order requested", i, d)
		}
	}
	e.requestDoor(req(3), true)
	e.loop.mu.Lock() // routineDoors at work
	e.requestDoor(req(4), false)
	e.loop.mu.Unlock()
	if n := len(fw.Doors()); n != 2 || len(e.newDoors) != 2 {
		t.Fatalf("%d doors armed, %d handed over; want 2 and 2", n, len(e.newDoors))
	}
}

// TestSpoofedClaimRearmed: a SYN claims the door but nothing follows it
// up (a blind spoof): after connection-delay-1 the door is armed again for
// the rest of waitfor, and the real client gets in (CLASSIC-6.5/2).
func TestSpoofedClaimRearmed(t *testing.T) {
	h := newHarness(t, Settings{WaitFor: 2 * time.Second, Delay1: 100 * time.Millisecond, Delay2: 20 * time.Millisecond})
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorArmed)
	h.claim(client, 666, 22)
	e := h.expect(DoorNarrow)
	h.fw.SetPackets(e.Door, 1) // the spoofed SYN alone
	h.expect(DoorArmed)
	fwDoors(t, h.fw, firewall.DoorArmed)
	if h.eng.Counters().Get(ReasonRearmed) != 1 {
		t.Fatal("re-arm not counted")
	}
	local := netip.AddrPortFrom(server, 22)
	h.conns.set(local, netip.AddrPortFrom(client, 4242), ConnEstablished)
	h.claim(client, 4242, 22)
	h.expect(DoorNarrow)
	h.expect(DoorOpen)
}

// TestShortConnection: a connection that came and went between two looks
// at the kernel's table still ends its door, without re-arming it: its
// packets tell it from a spoof (CLASSIC-6.2, CLASSIC-6.5/3).
func TestShortConnection(t *testing.T) {
	h := newHarness(t, Settings{WaitFor: 5 * time.Second, Delay1: 100 * time.Millisecond, Delay2: 20 * time.Millisecond})
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorArmed)
	h.claim(client, 5000, 22)
	e := h.expect(DoorNarrow)
	h.fw.SetPackets(e.Door, 5)
	h.expectClosed(CloseConnectionEnded)
	fwDoors(t, h.fw)
}

// TestNotEstablished: the handshake never completes and waitfor is over:
// the door closes (CLASSIC-6.5).
func TestNotEstablished(t *testing.T) {
	h := newHarness(t, Settings{WaitFor: 50 * time.Millisecond, Delay1: 200 * time.Millisecond, Delay2: 20 * time.Millisecond})
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorArmed)
	h.claim(client, 5000, 22)
	h.expect(DoorNarrow)
	h.expectClosed(CloseNotEstablished)
	fwDoors(t, h.fw)
}

// TestTwoDoorsTakeTurns: two knocks of one client for one port give two
// doors, each with its own connection (CLASSIC-6.7); the second waits
// until the first is claimed and established.
func TestTwoDoorsTakeTurns(t *testing.T) {
	h := newHarness(t, Settings{Interface: "any", WaitFor: 5 * time.Second, Delay1: time.Second, Delay2: 20 * time.Millisecond})
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expectEach(DoorArmed, DoorQueued)
	fwDoors(t, h.fw, firewall.DoorArmed)
	local := netip.AddrPortFrom(server, 22)
	h.conns.set(local, netip.AddrPortFrom(client, 1111), ConnEstablished)
	h.conns.set(local, netip.AddrPortFrom(client, 2222), ConnEstablished)
	h.claim(client, 1111, 22)
	h.expect(DoorNarrow)
	h.expect(DoorOpen)
	second := h.expect(DoorArmed)
	h.claim(client, 2222, 22)
	if e := h.expect(DoorNarrow); e.Door != second.Door || e.SrcPort != 2222 {
		t.Fatalf("second door narrow %+v", e)
	}
	h.expect(DoorOpen)
	for _, d := range fwDoors(t, h.fw, firewall.DoorNarrow, firewall.DoorNarrow) {
		if d.Iface != "" {
			t.Fatalf("door %+v names an interface for \"any\"", d)
		}
	}
}

// TestLateClaim: a claim for a door that closed is counted and ignored.
func TestLateClaim(t *testing.T) {
	h := newHarness(t, settings())
	h.claim(client, 1234, 22)
	deadline := time.Now().Add(5 * time.Second)
	for h.eng.Counters().Get(ReasonLateClaim) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("late claim not counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.noEvent(50 * time.Millisecond)
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
		{client, []byte("hello"), ReasonNotKnock},
		{client, append([]byte{protocol.ModernMagic}, valid[1:]...), ReasonModernNoKey},
		{client, knock(t, 22, "mallory", "x"), ReasonUnknownGuest},
		{client, knock(t, 80, "alice", "s3cretKnock"), ReasonPort},
		{alien, knock(t, 22, "alice", "s3cretKnock"), ReasonAddress},
		{client, knock(t, 22, "alice", "wrong"), ReasonMAC},
	}
	for _, c := range cases {
		h.sendUDP(c.src, c.payload)
	}
	h.sendUDP(client, valid) // still served after all that (CLASSIC-4.8)
	h.expect(DoorArmed)
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
	h.expect(DoorArmed)
	h.sendUDP(client, p)
	h.sendUDP(other, p)
	upper := append([]byte(nil), p...)
	for i := len(upper) - 32; i < len(upper); i++ {
		if upper[i] >= 'a' && upper[i] <= 'f' {
			upper[i] -= 'a' - 'A'
		}
	}
	h.sendUDP(other, upper) // a case variant is the same knock (CLASSIC-2.5)
	h.expectClosed(CloseWaitFor)
	h.noEvent(100 * time.Millisecond)
	if n := h.eng.Counters().Get(ReasonReplay); n != 3 {
		t.Fatalf("replays counted %d, want 3", n)
	}
}

// TestMaxDoors: a knock beyond max-doors is refused before its digest is
// used, so it works once a door closed (CLASSIC-6.12).
func TestMaxDoors(t *testing.T) {
	s := settings()
	s.MaxDoors = 1
	h := newHarness(t, s)
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorArmed)
	second := knock(t, 2222, "alice", "s3cretKnock")
	h.sendUDP(client, second)
	h.expectClosed(CloseWaitFor)
	if h.eng.Counters().Get(ReasonTooManyDoors) != 1 {
		t.Fatal("refusal for room not counted")
	}
	h.sendUDP(client, second)
	h.expect(DoorArmed)
}

// TestShutdownClosesDoors: stopping closes every door and removes every
// rule (CLASSIC-6.8).
func TestShutdownClosesDoors(t *testing.T) {
	h := newHarness(t, Settings{WaitFor: time.Minute, Delay1: time.Second, Delay2: time.Second})
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expectEach(DoorArmed, DoorQueued)
	h.stop()
	h.expectClosed(CloseShutdown)
	h.expectClosed(CloseShutdown)
	if n := len(h.fw.Calls()); n == 0 {
		t.Fatal("no firewall calls")
	}
	if d := h.fw.Doors(); len(d) != 0 {
		t.Fatalf("doors left: %+v", d)
	}
}

// TestFirewallErrors: a refused arm closes the door and the next knock
// still works; a refused close is retried until it goes (CLASSIC-6.10).
func TestFirewallErrors(t *testing.T) {
	h := newHarness(t, settings())
	h.fw.FailNext(errors.New("injected arm failure"))
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expectClosed(CloseFirewallError)
	fwDoors(t, h.fw)

	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorArmed)
	h.fw.FailNext(errors.New("injected close failure"))
	h.expectClosed(CloseWaitFor)
	fwDoors(t, h.fw, firewall.DoorArmed) // the close failed
	deadline := time.Now().Add(10 * time.Second)
	for len(h.fw.Doors()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("refused close never retried")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadKeepsDoors: a reload changes guests at once and leaves open
// doors alone (CLASSIC-6.11).
func TestReloadKeepsDoors(t *testing.T) {
	h := newHarness(t, Settings{WaitFor: time.Minute, Delay1: time.Second, Delay2: time.Second})
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorArmed)
	h.eng.Reload(settings(), NewGuests([]protocol.Guest{{Name: "bob", Secret: protocol.Secret("b0b"),
		Ports: []uint16{2222}, Nets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}}}))
	h.sendUDP(client, knock(t, 2222, "bob", "b0b"))
	h.expect(DoorArmed)
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expectClosed(CloseWaitFor) // bob's door, after the new waitfor
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
	h.expect(DoorArmed)
}

// TestEventJSON pins the event stream's schema (README, "Event stream").
func TestEventJSON(t *testing.T) {
	at := time.Date(2026, 11, 30, 4, 0, 0, 5, time.UTC)
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{Time: at, Kind: EventReady}, `{"event":"ready","time":"2026-11-30T04:00:00.000000005Z"}`},
		{Event{Time: at, Kind: EventKnock, Verdict: ReasonAccepted, Protocol: "classic", Src: client, Dst: server, Group: "alice", Port: 22},
			`{"dst":"198.18.0.1","event":"knock","group":"alice","port":22,"protocol":"classic","src":"198.18.0.2","time":"2026-11-30T04:00:00.000000005Z","verdict":"accepted"}`},
		{Event{Time: at, Kind: EventKnock, Verdict: ReasonReplay, Protocol: "classic", Src: client, Dst: server},
			`{"dst":"198.18.0.1","event":"knock","protocol":"classic","reason":"replay","src":"198.18.0.2","time":"2026-11-30T04:00:00.000000005Z","verdict":"rejected"}`},
		{Event{Time: at, Kind: EventDoor, Door: 3, State: DoorClosed, Why: CloseWaitFor, Src: client, Dst: server, Port: 22, Group: "alice"},
			`{"door":3,"dst":"198.18.0.1","event":"door","group":"alice","port":22,"src":"198.18.0.2","src_port":0,"state":"closed","time":"2026-11-30T04:00:00.000000005Z","why":"waitfor"}`},
		{Event{Time: at, Kind: EventReload, Err: "bad line"}, `{"error":"bad line","event":"reload","ok":false,"time":"2026-11-30T04:00:00.000000005Z"}`},
		{Event{Time: at, Kind: EventFirewall, Op: "restore table", Repaired: true}, `{"event":"firewall","op":"restore table","repaired":true,"time":"2026-11-30T04:00:00.000000005Z"}`},
		{Event{Time: at, Kind: EventCounters, Counters: map[string]uint64{"replay": 2}, OpenDoors: 1},
			`{"counters":{"replay":2},"event":"counters","open_doors":1,"time":"2026-11-30T04:00:00.000000005Z"}`},
		{Event{Time: at, Kind: EventStopped}, `{"event":"stopped","time":"2026-11-30T04:00:00.000000005Z"}`},
	} {
		b, err := tc.e.MarshalJSON()
		if err != nil || string(b) != tc.want {
			t.Errorf("%v:\n got %s (%v)\nwant %s", tc.e.Kind, b, err, tc.want)
		}
	}
}

// BenchmarkVerifyPipeline measures the engine's per-knock cost for
// valid-format knocks with a bad MAC, without I/O.
func BenchmarkVerifyPipeline(b *testing.B) {
	e := New(Options{Guests: NewGuests(alice())})
	e.limit.rate, e.limit.burst = 0, 0
	k, _ := protocol.NewKnock(22, "alice", 7, []byte("wrong"))
	p := capture.Packet{Src: client, Dst: server, DstPort: 1001, Payload: k.AppendPayload(nil)}
	var kk protocol.Knock
	b.ReportAllocs()
	for b.Loop() {
		e.handleKnock(&p, &kk)
	}
}

// TestDoorMemory arms many doors through the door loop, with the Fake
// firewall, and prints what a door costs the engine (CLASSIC-6.12):
//
//	go test ./daemon -run DoorMemory -v
func TestDoorMemory(t *testing.T) {
	n := 20000
	if raceEnabled {
		n = 2000 // the race detector slows the loop sixfold; the figure is per door
	}
	fw := firewall.NewFake()
	e := New(Options{Settings: Settings{WaitFor: time.Hour, Delay1: time.Second, Delay2: time.Second}, Firewall: fw})
	if err := fw.Start(context.Background(), e.notify()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	go func() { e.routineDoors(newDoorLoop(e), stop); close(done) }()
	now := time.Now()
	for i := range n {
		e.newDoors <- doorRequest{src: netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), dst: server, port: 22, group: "alice", at: now}
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.OpenDoors() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d doors open", e.OpenDoors(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	fwHeld := len(fw.Doors())
	close(stop)
	<-done
	perDoor := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(n)
	t.Logf("%d doors: the engine and the Fake firewall hold %d bytes a door (the Fake's own record included; %d doors held)", n, perDoor, fwHeld)
	if perDoor > 2048 {
		t.Errorf("%d bytes a door, want under 2 KB", perDoor)
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
		capture.ErrFragment, capture.ErrNotLocal, capture.ErrTruncated, capture.ErrNotCandidate}}
	eng := New(Options{Settings: settings(), Source: src, Firewall: firewall.NewFake()})
	done := make(chan error, 1)
	go func() { done <- eng.RoutineReceive() }()
	src.ch <- capture.Packet{Src: client, Dst: server, DstPort: 1001, Payload: []byte("junk")}
	deadline := time.Now().Add(5 * time.Second)
	for eng.Counters().Get(ReasonNotKnock) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	src.Close()
	if err := <-done; err != nil {
		t.Fatalf("RoutineReceive: %v", err)
	}
	want := map[Reason]uint64{ReasonIPOptions: 1, ReasonFragment: 2, ReasonNotLocal: 1, ReasonTruncated: 1,
		ReasonNotCandidate: 1, ReasonNotKnock: 1}
	for r, n := range want {
		if got := eng.Counters().Get(r); got != n {
			t.Errorf("%v counted %d, want %d", r, got, n)
		}
	}
}

// TestCaptureFailureEndsRun: a source that fails ends Run with its error,
// after every door closed and the firewall closed.
func TestCaptureFailureEndsRun(t *testing.T) {
	boom := errors.New("network is gone")
	src := &errSource{chanSource: newChanSource(), errs: []error{boom}}
	fw := firewall.NewFake()
	eng := New(Options{Settings: settings(), Source: src, Firewall: fw})
	err := eng.Run(context.Background())
	if !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want the source's error", err)
	}
	if d := fw.Doors(); len(d) != 0 {
		t.Fatalf("doors after Run: %+v", d)
	}
}

// TestReasonNames: every reason has its own name (counters are reported by
// name).
func TestReasonNames(t *testing.T) {
	seen := map[string]Reason{}
	for r := Reason(0); r < numReasons; r++ {
		name := r.String()
		if name == "" || name == "unknown" {
			t.Errorf("reason %d has no name", r)
		}
		if o, dup := seen[name]; dup {
			t.Errorf("reasons %d and %d are both %q", o, r, name)
		}
		seen[name] = r
	}
}
