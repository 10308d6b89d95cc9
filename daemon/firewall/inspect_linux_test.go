//go:build linux

package firewall

import (
	"context"
	"strings"
	"testing"
)

// TestIntegrationInspectInput: a policy-drop ruleset without the accept
// line for the door mark is found and the exact line to add is named
// (issue "doormand in production", item 4), for native nftables and for
// iptables-nft; with the line, nothing is reported.
func TestIntegrationInspectInput(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, n *testNet)
		fix   string // "" = nothing blocks
	}{
		{"nft-without-line", func(t *testing.T, n *testNet) { n.dropAllNFT(t, false) }, "nft insert rule inet filter input meta mark \\& 0x00100000 == 0x00100000 accept"},
		{"nft-with-line", func(t *testing.T, n *testNet) { n.dropAllNFT(t, true) }, ""},
		{"iptables-without-line", func(t *testing.T, n *testNet) { n.dropAllIPT(t, false) }, "iptables -I INPUT -m mark --mark 0x00100000/0x00100000 -j ACCEPT"},
		{"iptables-with-line", func(t *testing.T, n *testNet) { n.dropAllIPT(t, true) }, ""},
		{"drop-before-line", func(t *testing.T, n *testNet) {
			n.nftFile(t, `table inet filter {
	chain input {
		type filter hook input priority 0; policy accept;
		ct state established,related accept
		counter drop
		meta mark & 0x00100000 == 0x00100000 accept
	}
}
`)
		}, "nft insert rule inet filter input"},
		{"open-host", func(*testing.T, *testNet) {}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t)
			tc.setup(t, n)
			var got []Blocker
			n.must(t, "InspectInput", func(context.Context) (err error) {
				got, err = InspectInput(DefaultMark, DefaultNFTTable)
				return err
			})
			if tc.fix == "" {
				if len(got) != 0 {
					t.Fatalf("found blockers in a ruleset that lets doors in: %v", got)
				}
				return
			}
			for _, b := range got {
				if strings.Contains(b.Fix, tc.fix) {
					return
				}
			}
			t.Fatalf("blockers %v, want one whose fix is %q", got, tc.fix)
		})
	}
}

func TestLegacyBlocks(t *testing.T) {
	const m = DefaultMark
	for save, want := range map[string]string{
		":INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\n":                                                "policy drop and no rule accepts the door mark",
		":INPUT DROP [0:0]\n-A INPUT -m mark --mark 0x100000/0x100000 -j ACCEPT\n":                     "",
		":INPUT ACCEPT [0:0]\n-A INPUT -j DROP\n-A INPUT -m mark --mark 0x100000/0x100000 -j ACCEPT\n": "an unconditional drop comes before any rule that accepts the door mark",
		":INPUT ACCEPT [0:0]\n": "",
	} {
		if got := legacyBlocks(save, m); got != want {
			t.Errorf("%q: got %q, want %q", save, got, want)
		}
	}
}
