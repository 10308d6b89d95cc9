package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/protocol"
)

// syncBuffer is a bytes.Buffer safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestLogRecords checks what the log says of knocks: each rejection at
// warning level with its reason and source (CLASSIC-4.5/1), a malformed one
// with the field and at most 16 payload bytes in hex (CLASSIC-4.5/2), an
// accepted one at notice level with source, group and port (CLASSIC-4.7),
// a replay with the time first accepted (CLASSIC-5.3), and a flood of one
// reason rate-limited with a count of what was left out (CLASSIC-4.5/3).
func TestLogRecords(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := replay.Open(filepath.Join(t.TempDir(), "replay"), replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	src := newChanSource()
	events := make(chan DoorEvent, 8)
	eng := New(Options{Settings: settings(), Source: src, Firewall: firewall.NewFake(), Replay: store,
		Conns: &fakeConns{}, Logger: log, OnDoor: func(e DoorEvent) { events <- e },
		Guests: NewGuests([]protocol.Guest{{Name: "alice", Secret: protocol.Secret("s3cretKnock"),
			Ports: []uint16{22}, Nets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}}})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()

	send := func(from string, p []byte) {
		src.ch <- capture.Packet{Src: netip.MustParseAddr(from), Dst: server, SrcPort: 1, DstPort: 1001,
			Payload: p}
	}
	good := knock(t, 22, "alice", "s3cretKnock")
	send("198.18.0.2", []byte("2222 alice 19002160x7 6e5df0a5edc4d12ba369070be523e0d2"))
	send("198.18.0.3", knock(t, 22, "alice", "wrong"))
	send("198.18.0.2", good)
	<-events // broad
	send("198.18.0.4", good)
	for range 200 {
		send("198.18.0.5", []byte("junk junk junk"))
	}
	send("198.18.0.2", knock(t, 22, "mallory", "x"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "unknown guest") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	for range 20 {
		send("198.18.0.5", []byte("junk junk junk"))
	}
	time.Sleep(100 * time.Millisecond)
	out := buf.String()

	lines := strings.Split(out, "\n")
	find := func(substr string) string {
		for _, l := range lines {
			if strings.Contains(l, substr) {
				return l
			}
		}
		t.Fatalf("no log record with %q in:\n%s", substr, out)
		return ""
	}
	bad := find(`reason=malformed`)
	for _, want := range []string{"level=WARN", "src=198.18.0.2", "field=tag", "head=32323232", "bad packet"} {
		if !strings.Contains(bad, want) {
			t.Errorf("malformed record lacks %q: %s", want, bad)
		}
	}
	if i := strings.Index(bad, "head="); i < 0 || len(strings.Fields(bad[i:])[0]) != len("head=")+32 {
		t.Errorf("malformed record should show exactly the first 16 bytes in hex: %s", bad)
	}
	if mac := find("incorrect secret"); !strings.Contains(mac, "level=WARN") || !strings.Contains(mac, "src=198.18.0.3") {
		t.Errorf("bad MAC record: %s", mac)
	}
	acc := find("knock accepted")
	for _, want := range []string{"level=INFO+2", "src=198.18.0.2", "group=alice", "port=22"} {
		if !strings.Contains(acc, want) {
			t.Errorf("accepted record lacks %q: %s", want, acc)
		}
	}
	if rep := find("PROBABLE REPLAY ATTEMPT"); !strings.Contains(rep, "first_accepted=") || !strings.Contains(rep, "src=198.18.0.4") {
		t.Errorf("replay record: %s", rep)
	}
	if n := strings.Count(out, "reason=not-classic"); n >= 200 || n == 0 {
		t.Errorf("%d records for 220 junk datagrams: want some, rate-limited", n)
	}
	if !strings.Contains(out, "suppressed_since_last=") {
		t.Error("no record reports how many were suppressed")
	}
	if eng.Counters().Get(ReasonNotClassic) != 220 {
		t.Errorf("counted %d junk datagrams, want 220", eng.Counters().Get(ReasonNotClassic))
	}
}
