package firewall

import (
	"errors"
	"strings"
	"testing"
)

// TestParseScriptOutput: "0", or errno, level 0-7, message (CLASSIC-7.2).
func TestParseScriptOutput(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    ScriptReply
		wantErr bool
		failed  bool
	}{
		{in: "0\n", want: ScriptReply{Success: true}},
		{in: "0", want: ScriptReply{Success: true}},
		{in: "\n  0 \r\n", want: ScriptReply{Success: true}},
		{in: "0\nextra lines are ignored\n", want: ScriptReply{Success: true}},
		{in: "1 3 iptables failed\n", want: ScriptReply{Errno: 1, Level: 3, Message: "iptables failed"}, failed: true},
		{in: "2 0 emergency", want: ScriptReply{Errno: 2, Level: 0, Message: "emergency"}, failed: true},
		{in: "17 4 rule already there\n", want: ScriptReply{Errno: 17, Level: 4, Message: "rule already there"}},
		{in: "17 7", want: ScriptReply{Errno: 17, Level: 7}},
		{in: "5\t3\tmsg  with   spaces ", want: ScriptReply{Errno: 5, Level: 3, Message: "msg  with   spaces"}, failed: true},
		{in: "0 6 fine", want: ScriptReply{Errno: 0, Level: 6, Message: "fine"}},
		{in: "0 3 zero errno but error level", want: ScriptReply{Errno: 0, Level: 3, Message: "zero errno but error level"}, failed: true},
		{in: "-1 3 negative errno", want: ScriptReply{Errno: -1, Level: 3, Message: "negative errno"}, failed: true},
		{in: "", wantErr: true},
		{in: " \n\t\n", wantErr: true},
		{in: "1", wantErr: true},
		{in: "00", wantErr: true},
		{in: "ok", wantErr: true},
		{in: "1 8 level too high", wantErr: true},
		{in: "1 -1 level too low", wantErr: true},
		{in: "x 3 errno not a number", wantErr: true},
		{in: "1 three not a level", wantErr: true},
		{in: "99999999999 3 errno overflows", wantErr: true},
		{in: "iptables: Bad rule\n0\n", wantErr: true},
	} {
		got, err := ParseScriptOutput([]byte(tc.in))
		if tc.wantErr {
			if !errors.Is(err, ErrScriptOutput) {
				t.Errorf("%q: got %+v, %v; want ErrScriptOutput", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if got.Failed() != tc.failed {
			t.Errorf("%q: Failed() = %v, want %v", tc.in, got.Failed(), tc.failed)
		}
	}
}

func TestParseScriptOutputClipsMessage(t *testing.T) {
	got, err := ParseScriptOutput([]byte("1 3 " + strings.Repeat("x", 10000)))
	if err != nil || len(got.Message) > maxScriptMessage+3 {
		t.Fatalf("message of %d bytes, err %v", len(got.Message), err)
	}
}

func FuzzParseScriptOutput(f *testing.F) {
	for _, s := range []string{"0\n", "1 3 boom\n", "17 5 warn", "", "x", "1 9 x", "\n\n0", "2\t4\tmsg\r\n", "-0 0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		r, err := ParseScriptOutput(out)
		if err != nil {
			if !errors.Is(err, ErrScriptOutput) {
				t.Fatalf("error %v is not ErrScriptOutput", err)
			}
			if r != (ScriptReply{}) {
				t.Fatalf("error with non-zero reply %+v", r)
			}
			return
		}
		if r.Success {
			if r != (ScriptReply{Success: true}) {
				t.Fatalf("success reply with fields %+v", r)
			}
			return
		}
		if r.Level < 0 || r.Level > 7 {
			t.Fatalf("level %d out of range", r.Level)
		}
		if len(r.Message) > maxScriptMessage+3 || strings.ContainsAny(r.Message, "\n") {
			t.Fatalf("bad message %q", r.Message)
		}
		if r.Failed() != (r.Level <= 3) {
			t.Fatalf("Failed() disagrees with level %d", r.Level)
		}
	})
}
