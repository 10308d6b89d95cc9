package capture

import "testing"

func TestLinkHeaderLen(t *testing.T) {
	tests := []struct {
		mode       Mode
		hatype     uint16
		configured int
		want       int
		wantErr    bool
	}{
		{ModeRaw, arphrdEther, -1, 14, false},
		{ModeRaw, arphrdLoopback, -1, 14, false},
		{ModeRaw, arphrdNone, -1, 0, false},
		{ModeRaw, arphrdPPP, -1, 0, false},
		{ModeRaw, arphrdRawIP, -1, 0, false},
		{ModeRaw, arphrdSIT, -1, 0, false},
		{ModeRaw, 801, -1, 0, true}, // 802.11: unknown, must be configured
		{ModeRaw, 801, 24, 24, false},
		{ModeRaw, arphrdEther, 18, 18, false}, // configured wins
		{ModeRaw, arphrdPPP, 0, 0, false},     // 0 is a valid configured length
		{ModeNetwork, arphrdPPP, -1, 0, false},
		{ModeNetwork, arphrdEther, 18, 0, false}, // cooked: never a header
		{ModeNetwork, 801, -1, 0, false},
		{ModeSocket, arphrdEther, -1, 0, false},
	}
	for _, tc := range tests {
		got, err := linkHeaderLen(tc.mode, tc.hatype, tc.configured)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("linkHeaderLen(%v, %d, %d) = %d, %v; want %d, error %v",
				tc.mode, tc.hatype, tc.configured, got, err, tc.want, tc.wantErr)
		}
	}
	names := map[uint16]string{arphrdEther: "ethernet", arphrdNone: "none (raw IP)", arphrdLoopback: "loopback", arphrdPPP: "ppp", 801: "arphrd 801"}
	for h, want := range names {
		if got := linkTypeName(h); got != want {
			t.Errorf("linkTypeName(%d) = %q, want %q", h, got, want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"network": ModeNetwork, "cooked": ModeNetwork, "RAW": ModeRaw, " socket ": ModeSocket} {
		got, err := ParseMode(in)
		if err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseMode("pcap"); err == nil {
		t.Error("ParseMode(pcap) succeeded")
	}
	for _, m := range []Mode{ModeNetwork, ModeRaw, ModeSocket} {
		if got, err := ParseMode(m.String()); err != nil || got != m {
			t.Errorf("round trip of %v: %v, %v", m, got, err)
		}
	}
	if s := Mode(9).String(); s != "Mode(9)" {
		t.Errorf("Mode(9).String() = %q", s)
	}
}
