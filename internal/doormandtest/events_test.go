package doormandtest

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/doorman-project/doorman/daemon"
)

// TestSchema: what the daemon writes (daemon.Event's MarshalJSON) is what
// this package reads, field by field, for every kind of event.
func TestSchema(t *testing.T) {
	at := time.Date(2026, 11, 30, 4, 5, 6, 789, time.UTC)
	src, dst := netip.MustParseAddr("198.18.1.2"), netip.MustParseAddr("2001:db8::1")
	cases := []struct {
		in   daemon.Event
		want Event
	}{
		{daemon.Event{Time: at, Kind: daemon.EventReady}, Event{Time: at, Kind: KindReady}},
		{daemon.Event{Time: at, Kind: daemon.EventKnock, Verdict: daemon.ReasonAccepted, Protocol: "classic", Src: src, Dst: dst, Group: "alice", Port: 2222},
			Event{Time: at, Kind: KindKnock, Verdict: VerdictAccepted, Protocol: "classic", Src: src, Dst: dst, Group: "alice", Port: 2222}},
		{daemon.Event{Time: at, Kind: daemon.EventKnock, Verdict: daemon.ReasonReplay, Protocol: "classic", Src: src, Dst: dst, Group: "alice", Port: 22},
			Event{Time: at, Kind: KindKnock, Verdict: VerdictRejected, Reason: "replay", Protocol: "classic", Src: src, Dst: dst, Group: "alice", Port: 22}},
		{daemon.Event{Time: at, Kind: daemon.EventDoor, Door: 7, State: daemon.DoorClosed, Why: daemon.CloseConnectionEnded, Src: src, SrcPort: 40000, Dst: dst, Port: 2222, Group: "alice"},
			Event{Time: at, Kind: KindDoor, Door: 7, State: StateClosed, Why: "connection-ended", Src: src, SrcPort: 40000, Dst: dst, Port: 2222, Group: "alice"}},
		{daemon.Event{Time: at, Kind: daemon.EventFirewall, Op: "close door 7", Err: "boom"},
			Event{Time: at, Kind: KindFirewall, Op: "close door 7", Error: "boom"}},
		{daemon.Event{Time: at, Kind: daemon.EventFirewall, Op: "table", Repaired: true},
			Event{Time: at, Kind: KindFirewall, Op: "table", Repaired: true}},
		{daemon.Event{Time: at, Kind: daemon.EventReload}, Event{Time: at, Kind: KindReload, OK: true}},
		{daemon.Event{Time: at, Kind: daemon.EventReload, Err: "guests:2: bad"}, Event{Time: at, Kind: KindReload, Error: "guests:2: bad"}},
		{daemon.Event{Time: at, Kind: daemon.EventCounters, Counters: map[string]uint64{"replay": 2}, OpenDoors: 3},
			Event{Time: at, Kind: KindCounters, Counters: map[string]uint64{"replay": 2}, OpenDoors: 3}},
		{daemon.Event{Time: at, Kind: daemon.EventStopped}, Event{Time: at, Kind: KindStopped}},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.in)
		if err != nil {
			t.Fatal(err)
		}
		evs, rest, err := Decode(append(b, '\n'))
		if err != nil || rest != 0 || len(evs) != 1 {
			t.Fatalf("%s: Decode = %v, %d, %v", b, evs, rest, err)
		}
		got := evs[0]
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(c.want)
		if !got.Time.Equal(c.want.Time) || string(gotJSON) != string(wantJSON) {
			t.Errorf("%s\n decoded %s\n want    %s", b, gotJSON, wantJSON)
		}
	}
	// Door states and close reasons are the documented names.
	for s, want := range map[daemon.DoorState]string{daemon.DoorQueued: StateQueued, daemon.DoorArmed: StateArmed,
		daemon.DoorNarrow: StateNarrow, daemon.DoorOpen: StateOpen, daemon.DoorClosed: StateClosed} {
		if s.String() != want {
			t.Errorf("door state %d is %q, the stream documents %q", s, s.String(), want)
		}
	}
}

func TestDecode(t *testing.T) {
	good := `{"time":"2026-11-30T04:05:06Z","event":"ready","future":1}` + "\n"
	evs, rest, err := Decode([]byte(good + good[:10]))
	if err != nil || len(evs) != 1 || evs[0].Kind != KindReady || rest != 10 {
		t.Fatalf("Decode = %v, %d, %v; want one ready event and a 10-byte rest", evs, rest, err)
	}
	for _, bad := range []string{"not json\n", `{"event":"ready"}` + "\n", `{"time":"2026-11-30T04:05:06Z"}` + "\n",
		`{"time":"2026-11-30T04:05:06Z","event":"knock","src":"nonsense"}` + "\n"} {
		if _, _, err := Decode([]byte(good + bad)); err == nil {
			t.Errorf("Decode(%q) accepted it", bad)
		}
	}
}

func TestMatch(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.1.2"), netip.MustParseAddr("198.18.1.3")
	acc := Event{Kind: KindKnock, Verdict: VerdictAccepted, Src: a}
	rep := Event{Kind: KindKnock, Verdict: VerdictRejected, Reason: "replay", Src: b}
	closed := Event{Kind: KindDoor, State: StateClosed, Why: "waitfor", Src: a}
	for _, c := range []struct {
		name string
		m    Match
		e    Event
		want bool
	}{
		{"accepted", Accepted(), acc, true},
		{"accepted/rejected", Accepted(), rep, false},
		{"rejected any", Rejected(""), rep, true},
		{"rejected replay", Rejected("replay"), rep, true},
		{"rejected other", Rejected("malformed"), rep, false},
		{"from", Rejected("replay").From(b), rep, true},
		{"from other", Rejected("replay").From(a), rep, false},
		{"closed", Closed("waitfor"), closed, true},
		{"closed any", Closed(""), closed, true},
		{"closed other", Closed("shutdown"), closed, false},
		{"state", DoorState(StateClosed), closed, true},
		{"and", IsKind(KindDoor).And(func(e Event) bool { return e.Why == "waitfor" }), closed, true},
		{"kind", IsKind(KindReady), closed, false},
	} {
		if got := c.m(c.e); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestStream: a stream follows a file as it grows, a line at a time,
// including a line written in two parts, and Wait times out with a count.
func TestStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s := NewStream(path)
	if n := len(s.Events()); n != 0 || s.Err() != nil {
		t.Fatalf("missing file: %d events, %v", n, s.Err())
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := `{"time":"2026-11-30T04:05:06Z","event":"knock","verdict":"accepted","src":"198.18.1.2"}` + "\n"
	f.WriteString(line)
	f.WriteString(line[:20])
	if n := s.Count(Accepted()); n != 1 {
		t.Fatalf("%d accepted after one line and a half, want 1", n)
	}
	f.WriteString(line[20:])
	evs, err := s.Wait(Accepted(), 2, time.Second)
	if err != nil || len(evs) != 2 || evs[1].Src != netip.MustParseAddr("198.18.1.2") {
		t.Fatalf("Wait = %v, %v", evs, err)
	}
	if _, err := s.Wait(Accepted(), 3, 30*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait for a third: %v, want ErrTimeout", err)
	}
	if last, ok := s.Last(IsKind(KindKnock)); !ok || last.Verdict != VerdictAccepted {
		t.Errorf("Last = %v, %v", last, ok)
	}
	f.WriteString("garbage\n")
	if _, err := s.Wait(Accepted(), 3, time.Second); err == nil || errors.Is(err, ErrTimeout) {
		t.Errorf("Wait on a malformed stream: %v, want the decoding error", err)
	}
}

func TestConfig(t *testing.T) {
	got := Config("eth0", 2*time.Second, "firewall nftables", "", "protect 22\n")
	want := "interface eth0\nport 1001\nwaitfor 2s\nconnection-delay-1 500000\nconnection-delay-2 1\n" +
		"loglevel debug\nstats-interval 0\nfirewall nftables\nprotect 22\n"
	if got != want {
		t.Errorf("Config =\n%s\nwant\n%s", got, want)
	}
}
