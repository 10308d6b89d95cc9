package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	mrand "math/rand/v2"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flynn/noise"
	"golang.org/x/crypto/blake2s"

	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/protocol"
)

// Keys of the modern tests: the doorman's, bob's (a modern guest) and a
// stranger's (no guest).
var (
	serverKey   = testKey(1)
	bobKey      = testKey(2)
	strangerKey = testKey(3)
)

func testKey(seed byte) protocol.PrivateKey {
	k, err := protocol.NewPrivateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, protocol.KeySize)))
	if err != nil {
		panic(err)
	}
	return k
}

// bob is a modern guest: ports 22 and 2222 from 198.18.0.0/24.
func bob() protocol.Guest {
	return protocol.Guest{Name: "bob", Key: bobKey.Public(), Ports: []uint16{22, 2222},
		Nets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}}
}

func modernGuests() *Guests { return NewGuests(append(alice(), bob())) }

// newModernHarness runs an engine with the doorman's key, alice (classic),
// bob (modern) and a stamp store at stampPath ("" = a new one).
func newModernHarness(t *testing.T, s Settings, stampPath string) (*harness, *replay.Stamps) {
	t.Helper()
	if stampPath == "" {
		stampPath = filepath.Join(t.TempDir(), "stamps")
	}
	st, err := replay.OpenStamps(stampPath, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessWith(t, s, func(o *Options) {
		o.Guests = modernGuests()
		o.Opener = protocol.NewOpener(&serverKey)
		o.Stamps = st
	})
	t.Cleanup(func() { h.stop(); st.Close() })
	return h, st
}

// req is a request of bob's for port 22 stating client as its source,
// made now.
func req() protocol.Request {
	return protocol.Request{Time: uint64(time.Now().UnixNano()), Port: 22, Source: client}
}

// seal makes the modern knock for r from key to the doorman.
func seal(t testing.TB, key protocol.PrivateKey, r protocol.Request) []byte {
	t.Helper()
	p, err := protocol.SealKnock(nil, &key, serverKey.Public(), &r, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// withMAC1 recomputes p's mac1 for the doorman's key (MODERN-12.6), so
// that a knock altered after mac1 reaches the public-key work.
func withMAC1(p []byte) []byte {
	pub := serverKey.Public()
	key := blake2s.Sum256(append([]byte(protocol.ModernMAC1Label), pub[:]...))
	h, _ := blake2s.New128(key[:])
	n := protocol.ModernKnockLen - protocol.ModernMAC1Len
	h.Write(p[:n])
	return h.Sum(append([]byte(nil), p[:n]...))
}

// sealRaw seals raw request bytes, which SealKnock would refuse to
// encode, with the Noise construction of MODERN-12.5 written out again.
func sealRaw(t testing.TB, key protocol.PrivateKey, plain []byte) []byte {
	t.Helper()
	pub, server := key.Public(), serverKey.Public()
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s),
		Random:        rand.Reader,
		Pattern:       noise.HandshakeX,
		Initiator:     true,
		Prologue:      []byte(protocol.ModernPrologueLabel + "\xd2\x01"),
		StaticKeypair: noise.DHKey{Private: key[:], Public: pub[:]},
		PeerStatic:    server[:],
	})
	if err != nil {
		t.Fatal(err)
	}
	out, _, _, err := hs.WriteMessage([]byte{protocol.ModernMagic, protocol.ModernTypeKnock}, plain)
	if err != nil {
		t.Fatal(err)
	}
	return withMAC1(append(out, make([]byte, protocol.ModernMAC1Len)...))
}

// expectKnock waits for the next knock event and checks its verdict.
func (h *harness) expectKnock(verdict Reason) Event {
	h.t.Helper()
	select {
	case e := <-h.knocks:
		if e.Verdict != verdict {
			h.t.Fatalf("knock from %v: %v (%s), want %v", e.Src, e.Verdict, e.Protocol, verdict)
		}
		return e
	case <-time.After(5 * time.Second):
		h.t.Fatalf("no knock event, want %v", verdict)
	}
	return Event{}
}

// waitCount waits until counter r reaches n.
func waitCount(t *testing.T, e *Engine, r Reason, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.Counters().Get(r) < n {
		if time.Now().After(deadline) {
			t.Fatalf("counter %v is %d, want %d", r, e.Counters().Get(r), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestModernDoor: a modern knock opens a door from its stated source to
// its port on the address it was sent to (MODERN-12.13, MODERN-12.15,
// MODERN-12.18), reported as modern with its skew; the door then works as
// a classic one (CLASSIC-6.4).
func TestModernDoor(t *testing.T) {
	h, st := newModernHarness(t, settings(), "")
	r := req()
	h.sendUDP(client, seal(t, bobKey, r))
	ev := h.expectKnock(ReasonAccepted)
	if ev.Protocol != "modern" || ev.Group != "bob" || ev.Port != 22 || ev.Src != client || ev.Dst != server {
		t.Fatalf("accepted event %+v", ev)
	}
	if ev.Modern == nil || !ev.Modern.Stated || ev.Modern.SrcPort != 0 || ev.Modern.Skew > 0 || ev.Modern.Skew < -5*time.Second {
		t.Fatalf("modern details %+v", ev.Modern)
	}
	h.expect(DoorArmed)
	d := fwDoors(t, h.fw, firewall.DoorArmed)[0]
	if d.Src != client || d.Dst != server || d.Port != 22 || d.SrcPort != 0 {
		t.Fatalf("door %+v", d)
	}
	// MODERN-12.17/2: the time is in the store before the door opens.
	if last, ok := st.Last([32]byte(bobKey.Public())); !ok || last != r.Time {
		t.Fatalf("stamp %d %v, want %d", last, ok, r.Time)
	}
	h.claim(client, 40001, 22)
	h.expect(DoorNarrow)
}

// TestModernAsSeen: a knock stating no source opens the door for the
// address it came from (MODERN-12.15).
func TestModernAsSeen(t *testing.T) {
	h, _ := newModernHarness(t, settings(), "")
	r := req()
	r.Source = netip.Addr{}
	h.sendUDP(other, seal(t, bobKey, r))
	if ev := h.expectKnock(ReasonAccepted); ev.Src != other || ev.Modern == nil || ev.Modern.Stated {
		t.Fatalf("accepted event %+v", ev)
	}
	h.expect(DoorArmed)
	if d := fwDoors(t, h.fw, firewall.DoorArmed)[0]; d.Src != other {
		t.Fatalf("door for %v, want %v", d.Src, other)
	}
}

// TestModernPinnedDoor: with a stated source port the door admits that
// 4-tuple only, from the start (MODERN-12.18): it is armed with the port,
// and a SYN from another port of the same address claims nothing.
func TestModernPinnedDoor(t *testing.T) {
	h, _ := newModernHarness(t, settings(), "")
	r := req()
	r.SourcePort = 40123
	h.sendUDP(client, seal(t, bobKey, r))
	if ev := h.expectKnock(ReasonAccepted); ev.Modern == nil || ev.Modern.SrcPort != 40123 {
		t.Fatalf("accepted event %+v", ev)
	}
	h.expect(DoorArmed)
	if d := fwDoors(t, h.fw, firewall.DoorArmed)[0]; d.SrcPort != 40123 {
		t.Fatalf("door armed for source port %d, want 40123", d.SrcPort)
	}
	h.claim(client, 40124, 22) // what the kernel would never report
	waitCount(t, h.eng, ReasonLateClaim, 1)
	fwDoors(t, h.fw, firewall.DoorArmed)
	h.claim(client, 40123, 22)
	if ev := h.expect(DoorNarrow); ev.SrcPort != 40123 {
		t.Fatalf("claimed from %d", ev.SrcPort)
	}
}

// TestModernRefusals sends one knock for each reason of MODERN-12.11, in
// its order, and checks the counter, and the event where one is due
// (steps 5 on, MODERN-12.19); a valid knock is still served afterwards
// (CLASSIC-4.8), though it was made before the refused ones of the same
// guest, some with later times: no refusal touched its guest's time
// (MODERN-12.17/3).
func TestModernRefusals(t *testing.T) {
	s := settings()
	s.ModernBurst = 100 // this test is no flood
	h, _ := newModernHarness(t, s, "")
	valid := seal(t, bobKey, req())

	version := bytes.Clone(valid)
	version[1] = 0x02
	flipped := bytes.Clone(valid)
	flipped[100] ^= 1
	var padded [protocol.ModernRequestLen]byte
	binary.BigEndian.PutUint64(padded[0:], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint16(padded[8:], 22)
	padded[63] = 1
	otherServer, err := protocol.SealKnock(nil, &bobKey, strangerKey.Public(), &protocol.Request{Time: uint64(time.Now().UnixNano()), Port: 22}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration, src netip.Addr, port uint16) protocol.Request {
		r := req()
		r.Time = uint64(time.Now().Add(d).UnixNano())
		r.Source, r.Port = src, port
		return r
	}
	type tc struct {
		name    string
		src     netip.Addr
		payload []byte
		reason  Reason
		event   bool // a knock event is due
		group   string
		skew    time.Duration
	}
	cases := []tc{
		{"type of another version (MODERN-12.4)", client, version, ReasonModernVersion, false, "", 0},
		{"length (MODERN-12.3/2)", client, valid[:100], ReasonModernLength, false, "", 0},
		{"knock for another doorman: mac1 (MODERN-12.6/2)", client, otherServer, ReasonMAC1, false, "", 0},
		{"altered past mac1 (MODERN-12.5)", client, withMAC1(flipped), ReasonDecrypt, true, "", 0},
		{"padding not zero (MODERN-12.8/1)", client, sealRaw(t, bobKey, padded[:]), ReasonModernRequest, true, "", 0},
		{"no guest has the key (MODERN-12.13)", client, seal(t, strangerKey, req()), ReasonUnknownGuest, true, "", 0},
		{"clock 93 s ahead (MODERN-12.14)", client, seal(t, bobKey, at(93*time.Second, client, 22)), ReasonClockSkew, true, "bob", 93 * time.Second},
		{"clock 93 s behind (MODERN-12.14)", client, seal(t, bobKey, at(-93*time.Second, client, 22)), ReasonClockSkew, true, "bob", -93 * time.Second},
		{"raced from another address (MODERN-12.15)", other, seal(t, bobKey, at(0, client, 22)), ReasonSourceMismatch, true, "bob", 0},
		{"port (MODERN-12.16)", client, seal(t, bobKey, at(0, client, 80)), ReasonPort, true, "bob", 0},
		{"address, as seen (MODERN-12.16)", alien, seal(t, bobKey, at(0, netip.Addr{}, 22)), ReasonAddress, true, "bob", 0},
		{"address, stated (MODERN-12.16)", alien, seal(t, bobKey, at(0, alien, 22)), ReasonAddress, true, "bob", 0},
		{"classic knock naming a modern guest (MODERN-12.20/2)", client, knock(t, 22, "bob", ""), ReasonUnknownGuest, true, "bob", 0},
	}
	for _, c := range cases {
		before := h.eng.Counters().Get(c.reason)
		h.sendUDP(c.src, c.payload)
		if c.event {
			ev := h.expectKnock(c.reason)
			if ev.Group != c.group || (c.group == "") != (ev.Modern == nil && ev.Port == 0) {
				t.Errorf("%s: event shows group %q port %d modern %+v", c.name, ev.Group, ev.Port, ev.Modern)
			}
			if ev.Modern != nil {
				if d := ev.Modern.Skew - c.skew; d < -2*time.Second || d > 2*time.Second {
					t.Errorf("%s: skew %v, want about %v", c.name, ev.Modern.Skew, c.skew)
				}
			}
		}
		waitCount(t, h.eng, c.reason, before+1)
	}
	h.sendUDP(client, valid)
	h.expectKnock(ReasonAccepted)
	h.expect(DoorArmed)
	if n := h.eng.Counters().Get(ReasonAccepted); n != 1 {
		t.Fatalf("%d knocks accepted, want 1", n)
	}
}

// TestModernStale: a knock is accepted once; sent again, or an older one
// of the same guest, is stale (MODERN-12.17/1), from any address; another
// guest's time is its own.
func TestModernStale(t *testing.T) {
	h, _ := newModernHarness(t, settings(), "")
	older := seal(t, bobKey, req())
	time.Sleep(time.Millisecond)
	first := seal(t, bobKey, req())
	h.sendUDP(client, first)
	h.expectKnock(ReasonAccepted)
	h.expect(DoorArmed)
	h.sendUDP(client, first)
	h.expectKnock(ReasonStale)
	h.sendUDP(client, older)
	h.expectKnock(ReasonStale)
	asSeen := req()
	asSeen.Source = netip.Addr{}
	h.sendUDP(client, seal(t, bobKey, asSeen)) // later: accepted
	h.expectKnock(ReasonAccepted)
	if n := h.eng.Counters().Get(ReasonStale); n != 2 {
		t.Fatalf("stale counted %d, want 2", n)
	}
}

// TestModernStaleAfterRestart: the last accepted time survives a restart
// (MODERN-12.17/2).
func TestModernStaleAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stamps")
	p := seal(t, bobKey, req())
	h, st := newModernHarness(t, settings(), path)
	h.sendUDP(client, p)
	h.expectKnock(ReasonAccepted)
	h.stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	h2, _ := newModernHarness(t, settings(), path)
	h2.sendUDP(client, p)
	h2.expectKnock(ReasonStale)
}

// TestModernWindowSetting: modern-window is honoured (MODERN-12.14,
// MODERN-12.21).
func TestModernWindowSetting(t *testing.T) {
	s := settings()
	s.ModernWindow = 10 * time.Second
	h, _ := newModernHarness(t, s, "")
	r := req()
	r.Time = uint64(time.Now().Add(11 * time.Second).UnixNano())
	h.sendUDP(client, seal(t, bobKey, r))
	h.expectKnock(ReasonClockSkew)
	r.Time = uint64(time.Now().Add(5 * time.Second).UnixNano())
	h.sendUDP(client, seal(t, bobKey, r))
	h.expectKnock(ReasonAccepted)
}

// TestModernMaxDoors: a modern knock beyond max-doors is refused before
// its time is recorded, so it works once a door closed.
func TestModernMaxDoors(t *testing.T) {
	s := settings()
	s.MaxDoors = 1
	h, _ := newModernHarness(t, s, "")
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	h.expect(DoorArmed)
	p := seal(t, bobKey, req())
	h.sendUDP(client, p)
	h.expectKnock(ReasonAccepted) // alice's
	h.expectKnock(ReasonTooManyDoors)
	h.expectClosed(CloseWaitFor)
	// The door loop counts its doors after the batch that closed one.
	for end := time.Now().Add(5 * time.Second); h.eng.OpenDoors() != 0 && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	h.sendUDP(client, p)
	h.expectKnock(ReasonAccepted)
}

// TestClassicOff: with classic off every classic knock is refused and
// counted, and modern knocks still work (MODERN-12.20/3).
func TestClassicOff(t *testing.T) {
	s := settings()
	s.ClassicOff = true
	h, _ := newModernHarness(t, s, "")
	h.sendUDP(client, knock(t, 22, "alice", "s3cretKnock"))
	if ev := h.expectKnock(ReasonClassicDisabled); ev.Protocol != "classic" {
		t.Fatalf("event %+v", ev)
	}
	h.sendUDP(client, []byte("not even a knock"))
	h.sendUDP(client, seal(t, bobKey, req()))
	h.expectKnock(ReasonAccepted)
	h.expect(DoorArmed)
	// Turned on again by a reload.
	h.eng.Reload(settings(), modernGuests())
	h.sendUDP(client, knock(t, 2222, "alice", "s3cretKnock"))
	h.expectKnock(ReasonAccepted)
}

// TestModernNoKey: without a private key modern knocks are counted and
// dropped; a reload's key makes them work.
func TestModernNoKey(t *testing.T) {
	h, _ := newModernHarness(t, settings(), "")
	h.eng.SetOpener(nil)
	p := seal(t, bobKey, req())
	h.sendUDP(client, p)
	waitCount(t, h.eng, ReasonModernNoKey, 1)
	h.eng.SetOpener(protocol.NewOpener(&serverKey))
	h.sendUDP(client, p)
	h.expectKnock(ReasonAccepted)
}

// TestModernReload: a reload rebuilds the index by key (MODERN-12.13): a
// removed guest is unknown at once, a new one is known.
func TestModernReload(t *testing.T) {
	h, _ := newModernHarness(t, settings(), "")
	h.eng.Reload(settings(), NewGuests(alice()))
	h.sendUDP(client, seal(t, bobKey, req()))
	h.expectKnock(ReasonUnknownGuest)
	carol := bob()
	carol.Name, carol.Key = "carol", strangerKey.Public()
	h.eng.Reload(settings(), NewGuests([]protocol.Guest{carol}))
	h.sendUDP(client, seal(t, strangerKey, req()))
	if ev := h.expectKnock(ReasonAccepted); ev.Group != "carol" {
		t.Fatalf("accepted for %q", ev.Group)
	}
	lim := h.eng.sources.Load()
	h.eng.Reload(settings(), NewGuests(nil))
	if h.eng.sources.Load() != lim {
		t.Fatal("a reload without new rate limits reset the limiter")
	}
	s := settings()
	s.ModernRate = 7
	h.eng.Reload(s, NewGuests(nil))
	if l := h.eng.sources.Load(); l == lim || l.Rate != 7 {
		t.Fatal("a new modern-rate was not applied")
	}
}

// TestModernRateLimitPerSource: a flood of knocks that pass mac1 from one
// source is rate-limited before the public-key work, and does not starve
// another source's knock (MODERN-12.12).
func TestModernRateLimitPerSource(t *testing.T) {
	s := settings()
	s.ModernRate, s.ModernBurst = 1, 3
	h, _ := newModernHarness(t, s, "")
	const flood = 200
	junk := seal(t, strangerKey, req()) // passes mac1, costs the X25519 work
	for range flood {
		h.sendUDP(other, junk)
	}
	h.sendUDP(client, seal(t, bobKey, req()))
	deadline := time.After(5 * time.Second)
	for accepted := false; !accepted; {
		select {
		case ev := <-h.knocks:
			accepted = ev.Verdict == ReasonAccepted && ev.Src == client
		case <-deadline:
			t.Fatal("the knock from another source was not accepted during the flood")
		}
	}
	// The flood's last opened knocks may still be in the other routines.
	var limited, opened uint64
	for end := time.Now().Add(5 * time.Second); limited+opened < flood && time.Now().Before(end); time.Sleep(time.Millisecond) {
		limited, opened = h.eng.Counters().Get(ReasonRateLimited), h.eng.Counters().Get(ReasonUnknownGuest)
	}
	if limited+opened != flood || opened > 5 || h.eng.Counters().Get(ReasonModernBusy) != 0 {
		t.Fatalf("flood of %d: %d rate-limited, %d opened (burst 3, 1 a second)", flood, limited, opened)
	}
	t.Logf("flood of %d from one source: %d rate-limited, %d opened", flood, limited, opened)
}

// TestModernQueueFull: knocks past the rate limit that find the queue to
// the public-key work full are dropped and counted, never waited for
// (MODERN-12.11/2).
func TestModernQueueFull(t *testing.T) {
	e := New(Options{Guests: modernGuests(), Opener: protocol.NewOpener(&serverKey)})
	p := capture.Packet{Dst: server, DstPort: 1001, Payload: seal(t, strangerKey, req())}
	const n = modernQueue + 44
	for i := range n {
		p.Src = netip.AddrFrom4([4]byte{198, 18, 1 + byte(i>>8), byte(i)})
		e.handleKnock(&p, nil) // no routine drains the queue
	}
	if got := e.Counters().Get(ReasonModernBusy); got != 44 || len(e.modernQ) != modernQueue {
		t.Fatalf("%d dropped, %d queued; want 44 and %d", got, len(e.modernQ), modernQueue)
	}
}

// TestModernArrivalTime: a queued knock's time is checked against the
// clock when it arrived, not when its turn came (MODERN-12.11/2).
func TestModernArrivalTime(t *testing.T) {
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	st, err := replay.OpenStamps(filepath.Join(t.TempDir(), "stamps"), replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := New(Options{Guests: modernGuests(), Opener: protocol.NewOpener(&serverKey), Stamps: st,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	r := req()
	r.Time = uint64(now.UnixNano())
	p := capture.Packet{Src: client, Dst: server, DstPort: 1001, Payload: seal(t, bobKey, r)}
	e.handleKnock(&p, nil)
	clock.Add(int64(10 * time.Minute)) // the queue was slow
	j := <-e.modernQ
	e.verifyModern(&j)
	if d := <-e.newDoors; d.src != client || d.port != 22 {
		t.Fatalf("door request %+v", d)
	}
	if n := e.Counters().Get(ReasonClockSkew); n != 0 {
		t.Fatal("checked against the clock of its turn")
	}
}

// failingStamps is a stamp store that fails with err.
type failingStamps struct{ err error }

func (f failingStamps) Advance([32]byte, uint64) (uint64, error) { return 0, f.err }

// TestModernStampStoreErrors: a knock whose time cannot be recorded opens
// nothing (MODERN-12.17/2), under its own reason.
func TestModernStampStoreErrors(t *testing.T) {
	for _, c := range []struct {
		err    error
		reason Reason
	}{
		{replay.ErrStoreFailed, ReasonStampFailed},
		{replay.ErrStoreChanged, ReasonStampFailed},
		{errors.New("disk full"), ReasonStampError},
		{nil, ReasonStampFailed}, // no store at all
	} {
		h := newHarnessWith(t, settings(), func(o *Options) {
			o.Guests = modernGuests()
			o.Opener = protocol.NewOpener(&serverKey)
			if c.err != nil {
				o.Stamps = failingStamps{c.err}
			}
		})
		h.sendUDP(client, seal(t, bobKey, req()))
		h.expectKnock(c.reason)
		h.stop()
		if d := h.fw.Doors(); len(d) != 0 {
			t.Fatalf("%v: doors %+v", c.err, d)
		}
	}
}

// TestModernJunkNeverCrashes: random modern-looking datagrams, with and
// without a valid mac1, are refused without harm (MODERN-12.19,
// CLASSIC-4.8).
func TestModernJunkNeverCrashes(t *testing.T) {
	h, _ := newModernHarness(t, settings(), "")
	r := mrand.New(mrand.NewPCG(3, 4))
	var fixed uint64
	for i := range 300 {
		b := make([]byte, protocol.ModernKnockLen)
		for j := range b {
			b[j] = byte(r.IntN(256))
		}
		b[0], b[1] = protocol.ModernMagic, protocol.ModernTypeKnock
		if i%3 == 0 {
			b = withMAC1(b)
			fixed++
		}
		// From many sources, so the rate limit lets them through.
		h.sendUDP(netip.AddrFrom4([4]byte{198, 18, 2, byte(i)}), b)
	}
	waitCount(t, h.eng, ReasonDecrypt, fixed)
	h.sendUDP(client, seal(t, bobKey, req()))
	for ev := h.expectKnockAny(); ev.Verdict != ReasonAccepted; ev = h.expectKnockAny() {
		if ev.Verdict != ReasonDecrypt {
			t.Fatalf("junk refused as %v", ev.Verdict)
		}
	}
	if n := h.eng.Counters().Get(ReasonMAC1); n != 300-fixed {
		t.Fatalf("bad mac1 %d, want %d", n, 300-fixed)
	}
}

func (h *harness) expectKnockAny() Event {
	h.t.Helper()
	select {
	case e := <-h.knocks:
		return e
	case <-time.After(5 * time.Second):
		h.t.Fatal("no knock event")
	}
	return Event{}
}

// TestModernJunkNoAllocs: refusing junk before the public-key work
// allocates nothing (MODERN-12.6), for every cheap refusal.
func TestModernJunkNoAllocs(t *testing.T) {
	e := New(Options{Guests: modernGuests(), Opener: protocol.NewOpener(&serverKey)})
	junk := make([]byte, protocol.ModernKnockLen)
	junk[0], junk[1] = protocol.ModernMagic, protocol.ModernTypeKnock
	version := bytes.Clone(junk)
	version[1] = 9
	for name, payload := range map[string][]byte{"bad mac1": junk, "version": version, "length": junk[:60]} {
		p := capture.Packet{Src: client, Dst: server, DstPort: 1001, Payload: payload}
		if n := testing.AllocsPerRun(1000, func() { e.handleKnock(&p, nil) }); n != 0 {
			t.Errorf("%s: %v allocations a datagram", name, n)
		}
	}
	noKey := New(Options{})
	p := capture.Packet{Src: client, Dst: server, DstPort: 1001, Payload: junk}
	if n := testing.AllocsPerRun(1000, func() { noKey.handleKnock(&p, nil) }); n != 0 {
		t.Errorf("no key: %v allocations a datagram", n)
	}
}

// TestModernEventJSON pins the modern fields of the knock event.
func TestModernEventJSON(t *testing.T) {
	at := time.Date(2026, 11, 30, 4, 0, 0, 5, time.UTC)
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{Time: at, Kind: EventKnock, Verdict: ReasonClockSkew, Protocol: "modern", Src: client, Dst: server, Group: "bob", Port: 22,
			Modern: &ModernInfo{Skew: 93*time.Second + 400*time.Millisecond, Stated: true}},
			`{"dst":"198.18.0.1","event":"knock","group":"bob","port":22,"protocol":"modern","reason":"clock-skew","skew_ms":93400,"source":"stated","src":"198.18.0.2","time":"2026-11-30T04:00:00.000000005Z","verdict":"rejected"}`},
		{Event{Time: at, Kind: EventKnock, Verdict: ReasonAccepted, Protocol: "modern", Src: client, Dst: server, Group: "bob", Port: 22,
			Modern: &ModernInfo{Skew: -1500 * time.Millisecond, SrcPort: 40123}},
			`{"dst":"198.18.0.1","event":"knock","group":"bob","port":22,"protocol":"modern","skew_ms":-1500,"source":"seen","src":"198.18.0.2","src_port":40123,"time":"2026-11-30T04:00:00.000000005Z","verdict":"accepted"}`},
		{Event{Time: at, Kind: EventKnock, Verdict: ReasonDecrypt, Protocol: "modern", Src: client, Dst: server},
			`{"dst":"198.18.0.1","event":"knock","protocol":"modern","reason":"does-not-decrypt","src":"198.18.0.2","time":"2026-11-30T04:00:00.000000005Z","verdict":"rejected"}`},
	} {
		b, err := tc.e.MarshalJSON()
		if err != nil || string(b) != tc.want {
			t.Errorf("%v:\n got %s (%v)\nwant %s", tc.e.Verdict, b, err, tc.want)
		}
	}
}

// BenchmarkModernJunk: what a modern-looking datagram with a wrong mac1
// costs the receive routine (MODERN-12.6: about a classic verify, no
// allocation).
func BenchmarkModernJunk(b *testing.B) {
	e := New(Options{Guests: modernGuests(), Opener: protocol.NewOpener(&serverKey)})
	junk := make([]byte, protocol.ModernKnockLen)
	junk[0], junk[1] = protocol.ModernMagic, protocol.ModernTypeKnock
	p := capture.Packet{Src: client, Dst: server, DstPort: 1001, Payload: junk}
	b.ReportAllocs()
	for b.Loop() {
		e.handleKnock(&p, nil)
	}
}

// bumpStamps is the real stamp store, given an ever later time so that
// one knock can be verified over and over.
type bumpStamps struct {
	s *replay.Stamps
	n uint64
}

func (b *bumpStamps) Advance(g [32]byte, _ uint64) (uint64, error) { b.n++; return b.s.Advance(g, b.n) }

// BenchmarkModernVerify: a full verify of a valid knock after the cheap
// checks: Noise (two X25519), the request, guest, time, binding, and the
// durable stamp (a write(2) to the stamp file), up to the door request.
func BenchmarkModernVerify(b *testing.B) {
	st, err := replay.OpenStamps(filepath.Join(b.TempDir(), "stamps"), replay.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e := New(Options{Guests: modernGuests(), Opener: protocol.NewOpener(&serverKey), Stamps: &bumpStamps{s: st}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			select {
			case <-e.newDoors:
			case <-ctx.Done():
				return
			}
		}
	}()
	j := modernJob{opener: e.opener.Load(), src: client, dst: server, at: time.Now()}
	copy(j.payload[:], seal(b, bobKey, req()))
	b.ReportAllocs()
	for b.Loop() {
		e.verifyModern(&j)
	}
	if n := e.Counters().Get(ReasonAccepted); n == 0 {
		b.Fatal("nothing accepted")
	}
}
