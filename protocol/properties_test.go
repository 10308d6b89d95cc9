package protocol

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var groupAlphabet = []rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + GroupAlphabet)

func genGroup() *rapid.Generator[string] {
	return rapid.StringOfN(rapid.RuneFrom(groupAlphabet), 1, MaxGroupLen, -1)
}

func genKnock(t *rapid.T) (Knock, []byte) {
	port := rapid.Uint16Range(1, 65535).Draw(t, "port")
	group := genGroup().Draw(t, "group")
	tag := rapid.Uint32().Draw(t, "tag")
	secret := rapid.SliceOfN(rapid.Byte(), 1, 300).Draw(t, "secret")
	k, err := NewKnock(port, group, tag, secret)
	if err != nil {
		t.Fatalf("NewKnock(%d, %q): %v", port, group, err)
	}
	return k, secret
}

// TestPropertyRoundTrip: every knock a client builds parses back to itself
// and stays within the length limits (CLASSIC-2.1/1, CLASSIC-2.2/1,
// CLASSIC-2.2/3, CLASSIC-2.3).
func TestPropertyRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		k, _ := genKnock(t)
		p := k.AppendPayload(nil)
		if len(p) < MinClassicLen || len(p) > MaxClassicLen {
			t.Fatalf("payload %q has length %d", p, len(p))
		}
		var got Knock
		if err := ParseKnock(p, &got); err != nil {
			t.Fatalf("ParseKnock(%q): %v", p, err)
		}
		if got != k {
			t.Fatalf("round trip %q -> %q", p, got.String())
		}
	})
}

// TestPropertyVerifyAccepts: a knock built with the guest's secret passes
// every check for an allowed port and address (CLASSIC-4.1).
func TestPropertyVerifyAccepts(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		k, secret := genKnock(t)
		g := Guest{Name: k.GroupString(), Secret: secret, Ports: []uint16{k.Port},
			Nets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}}
		var parsed Knock
		if err := ParseKnock(k.AppendPayload(nil), &parsed); err != nil {
			t.Fatal(err)
		}
		if err := Verify(&parsed, &g, netip.MustParseAddr("198.18.3.4")); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
}

// TestPropertyAnyByteChangeRejected: changing any one byte of a valid knock
// makes it fail to parse or fail verification (CLASSIC-3.1, CLASSIC-4.6):
// a knock has one valid spelling (CLASSIC-3.2).
// Changing the case of a hex digit is not a change of the knock (CLASSIC-2.5).
func TestPropertyAnyByteChangeRejected(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		k, secret := genKnock(t)
		p := k.AppendPayload(nil)
		i := rapid.IntRange(0, len(p)-1).Draw(t, "index")
		b := rapid.Byte().Filter(func(b byte) bool { return b != p[i] }).Draw(t, "byte")
		orig := p[i]
		p[i] = b
		if i >= len(p)-MACHexLen && bytes.EqualFold([]byte{orig}, []byte{b}) {
			t.Skip("hex case change")
		}
		var got Knock
		if err := ParseKnock(p, &got); err != nil {
			return
		}
		if got.VerifyMAC(secret) {
			t.Fatalf("changed byte %d (%q -> %q) still verifies: %q", i, orig, b, p)
		}
	})
}

// TestPropertyParseNeverPanics: arbitrary input yields a knock or a
// *FieldError, never a panic (CLASSIC-4.8).
func TestPropertyParseNeverPanics(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := rapid.SliceOfN(rapid.Byte(), 0, 200).Draw(t, "payload")
		var k Knock
		if err := ParseKnock(p, &k); err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error of type %T", err)
			}
		}
	})
}

// TestPropertyReplayExact: the replay set is exact — whatever the sequence,
// a digest is admitted at most once and every fresh digest is admitted
// until the capacity is reached (CLASSIC-5.1, CLASSIC-5.4).
func TestPropertyReplayExact(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		capacity := rapid.IntRange(1, 20).Draw(t, "capacity")
		clock := time.Unix(1_000_000, 0)
		r := ReplaySet{Capacity: capacity, Now: func() time.Time { clock = clock.Add(time.Second); return clock }}
		model := map[byte]bool{}
		for _, d := range rapid.SliceOfN(rapid.Byte(), 1, 60).Draw(t, "digests") {
			var mac [MACSize]byte
			mac[0] = d
			_, err := r.Admit(mac)
			switch {
			case model[d]:
				if err != ErrReplay {
					t.Fatalf("digest %d seen before: got %v, want ErrReplay", d, err)
				}
			case len(model) >= capacity:
				if err != ErrReplayFull {
					t.Fatalf("set full: got %v, want ErrReplayFull", err)
				}
			default:
				if err != nil {
					t.Fatalf("fresh digest %d: %v", d, err)
				}
				model[d] = true
			}
		}
		if r.Len() != len(model) {
			t.Fatalf("Len %d, model %d", r.Len(), len(model))
		}
	})
}
