package firewall

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseJournal(t *testing.T) {
	in := journalHeader +
		"add 1 veth0 198.18.0.2 0 198.18.0.1 22\n" +
		"add 2 any 2001:db8::2 4000 2001:db8::1 22\n" +
		"add 3 veth0 198.18.0.2 4001 198.18.0.1 22\n" +
		"del 1\n" +
		"garbage line\n" +
		"add 4 veth0 not-an-ip 0 198.18.0.1 22\n" +
		"add 5 veth0 198.18.0.2 0 2001:db8::1 22\n" + // mixed families: unusable
		"del x\n" +
		"del 3\n" +
		"add 6 veth0 198.18.0.3 0 198.18.0.1 2" // torn last line still parses if complete
	live, bad, err := parseJournal(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if bad != 4 {
		t.Errorf("bad lines = %d, want 4", bad)
	}
	want := []journalEntry{
		{2, Rule{Iface: "any", Src: netip.MustParseAddr("2001:db8::2"), SrcPort: 4000, Dst: netip.MustParseAddr("2001:db8::1"), DstPort: 22}},
		{6, Rule{Iface: "veth0", Src: netip.MustParseAddr("198.18.0.3"), Dst: netip.MustParseAddr("198.18.0.1"), DstPort: 2}},
	}
	if len(live) != len(want) {
		t.Fatalf("live = %+v, want %+v", live, want)
	}
	for i := range want {
		if live[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, live[i], want[i])
		}
	}
}

func TestJournalLineRoundTrip(t *testing.T) {
	for _, r := range []Rule{
		{Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.18.0.1"), DstPort: 22}, // "" is written as "any"
		{Iface: "veth0", Src: netip.MustParseAddr("2001:db8::2"), SrcPort: 65535, Dst: netip.MustParseAddr("2001:db8::1"), DstPort: 1},
	} {
		e := journalEntry{ID: 42, Rule: r}
		live, bad, err := parseJournal(strings.NewReader(e.addLine()))
		if err != nil || bad != 0 || len(live) != 1 {
			t.Fatalf("%q: live %v bad %d err %v", e.addLine(), live, bad, err)
		}
		if scriptArgs(live[0].Rule) != scriptArgs(r) || live[0].ID != 42 {
			t.Errorf("round trip of %v gave %v", r, live[0])
		}
		live, _, _ = parseJournal(strings.NewReader(e.addLine() + delLine(42)))
		if len(live) != 0 {
			t.Errorf("del did not cancel add: %v", live)
		}
	}
}

func FuzzParseJournal(f *testing.F) {
	f.Add([]byte(journalHeader + "add 1 veth0 198.18.0.2 0 198.18.0.1 22\ndel 1\n"))
	f.Add([]byte("add 7 any 2001:db8::2 9 2001:db8::1 22\nadd 7 any 2001:db8::2 9 2001:db8::1 22\n"))
	f.Add([]byte("del 1\nadd 1 eth0 1.2.3.4 0 5.6.7.8 9"))
	f.Add([]byte("add 18446744073709551615 x ::1 1 ::2 2\n#\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		live, bad, err := parseJournal(strings.NewReader(string(in)))
		if err != nil {
			return // only overlong lines
		}
		if bad < 0 {
			t.Fatal("negative bad count")
		}
		seen := map[uint64]bool{}
		for _, e := range live {
			if seen[e.ID] {
				t.Fatalf("id %d twice", e.ID)
			}
			seen[e.ID] = true
			if err := e.Rule.validate(); err != nil {
				t.Fatalf("invalid rule %v from journal: %v", e.Rule, err)
			}
			// What we write back must parse to the same arguments.
			again, _, _ := parseJournal(strings.NewReader(e.addLine()))
			if len(again) != 1 || scriptArgs(again[0].Rule) != scriptArgs(e.Rule) {
				t.Fatalf("rewrite of %v parsed as %v", e, again)
			}
		}
	})
}
