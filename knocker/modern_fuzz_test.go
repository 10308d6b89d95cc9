package knocker

import (
	"testing"
)

// FuzzModernConfigRecord: no record panics the modern client
// configuration; whatever it accepts is usable (MODERN-12.22).
func FuzzModernConfigRecord(f *testing.F) {
	const key = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
	f.Add("server", "gw.example.net "+key+" # gw")
	f.Add("server", "[2001:db8::1] "+key)
	f.Add("private-key", "~/.knock.key")
	f.Add("private-key", "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=")
	f.Add("source", "198.18.0.7")
	f.Add("source", "seen")
	f.Fuzz(func(t *testing.T, kw, value string) {
		var m ModernConfig
		known, err := m.Record("/etc/knockcf", kw, value)
		if err != nil || !known {
			return
		}
		for host, k := range m.Servers {
			if host == "" || k.Check() != nil {
				t.Fatalf("server %q with key %v accepted", host, k)
			}
		}
		if (m.Source == SourceFixed) != m.SourceAddr.IsValid() {
			t.Fatalf("source %v with address %v", m.Source, m.SourceAddr)
		}
		if kw == "private-key" && m.PrivateKeyFile == "" {
			t.Fatal("empty key file path accepted")
		}
	})
}
