package protocol

import "testing"

// FuzzParseKnock: the parser never panics, and whatever it accepts
// re-encodes to a payload that parses to the same knock (CLASSIC-4.8).
func FuzzParseKnock(f *testing.F) {
	for _, s := range []string{
		originalPayload, originalPayload + "\n", "2222 somebody 1234567890",
		"02222 alice 1900216097 6e5df0a5edc4d12ba369070be523e0d2",
		"2222 alice 1900216097 6E5DF0A5EDC4D12BA369070BE523E0D2", "", "\xd2",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		var k Knock
		if err := ParseKnock(p, &k); err != nil {
			return
		}
		var again Knock
		if err := ParseKnock(k.AppendPayload(nil), &again); err != nil || again != k {
			t.Fatalf("accepted %q but its re-encoding %q does not round trip: %v", p, k.String(), err)
		}
	})
}
