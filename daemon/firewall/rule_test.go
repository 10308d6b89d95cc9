package firewall

import (
	"errors"
	"net/netip"
	"testing"
)

func TestRuleString(t *testing.T) {
	v4s, v4d := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1")
	v6s, v6d := netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		r    Rule
		want string
	}{
		{Rule{Iface: "veth0", Src: v4s, Dst: v4d, DstPort: 22}, "tcp 198.18.0.2:any -> 198.18.0.1:22 on veth0"},
		{Rule{Src: v4s, SrcPort: 40000, Dst: v4d, DstPort: 22}, "tcp 198.18.0.2:40000 -> 198.18.0.1:22"},
		{Rule{Iface: "any", Src: v4s, SrcPort: 1, Dst: v4d, DstPort: 65535}, "tcp 198.18.0.2:1 -> 198.18.0.1:65535"},
		{Rule{Iface: "eth1", Src: v6s, SrcPort: 5, Dst: v6d, DstPort: 2222}, "tcp [2001:db8::2]:5 -> [2001:db8::1]:2222 on eth1"},
		{Rule{}, "tcp invalid-ip:any -> invalid-ip:any"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestRuleValidate(t *testing.T) {
	v4s, v4d := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	mapped := netip.MustParseAddr("::ffff:198.18.0.2")
	good := []Rule{
		{Src: v4s, Dst: v4d, DstPort: 22},
		{Iface: "any", Src: v4s, SrcPort: 9, Dst: v4d, DstPort: 22},
		{Iface: "veth-long-name1", Src: v6, Dst: v6, DstPort: 1},
		{Src: mapped, Dst: v4d, DstPort: 22}, // mapped address is matched as IPv4
	}
	for _, r := range good {
		if err := r.validate(); err != nil {
			t.Errorf("%v: unexpected error %v", r, err)
		}
	}
	bad := []Rule{
		{Dst: v4d, DstPort: 22},
		{Src: v4s, DstPort: 22},
		{Src: v4s, Dst: v6, DstPort: 22},
		{Src: v4s, Dst: v4d},
		{Iface: "veth-long-name12", Src: v4s, Dst: v4d, DstPort: 22},
		{Iface: "a b", Src: v4s, Dst: v4d, DstPort: 22},
		{Iface: "a/b", Src: v4s, Dst: v4d, DstPort: 22},
		{Iface: "..", Src: v4s, Dst: v4d, DstPort: 22},
		{Iface: "a\nb", Src: v4s, Dst: v4d, DstPort: 22},
	}
	for _, r := range bad {
		if err := r.validate(); !errors.Is(err, ErrInvalidRule) {
			t.Errorf("%#v: got %v, want ErrInvalidRule", r, err)
		}
	}
}

func TestRuleErrorNamesBackendAndRule(t *testing.T) {
	r := Rule{Iface: "veth0", Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.18.0.1"), DstPort: 22}
	err := ruleErr("nftables", "add", r, ErrUnknownRule)
	want := "nftables: add tcp 198.18.0.2:any -> 198.18.0.1:22 on veth0: " + ErrUnknownRule.Error()
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if !errors.Is(err, ErrUnknownRule) {
		t.Error("errors.Is lost the cause")
	}
	var re *RuleError
	if !errors.As(err, &re) || re.Rule != r {
		t.Error("errors.As did not give back the rule")
	}
	if ruleErr("x", "add", r, nil) != nil {
		t.Error("nil cause must give nil error")
	}
}
