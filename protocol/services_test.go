package protocol

import "testing"

// TestWellKnownPort: the built-in service table that guest lists
// (CLASSIC-9.2) and knockers (CLASSIC-11.2) fall back on.
func TestWellKnownPort(t *testing.T) {
	want := map[string]uint16{"ssh": 22, "telnet": 23, "ftp": 21, "smtp": 25, "http": 80, "https": 443,
		"pop3": 110, "imap": 143, "imap2": 143, "imaps": 993, "pop3s": 995, "submission": 587, "domain": 53,
		"rsync": 873, "mysql": 3306, "postgresql": 5432, "Postgres": 5432, "rdp": 3389, "ms-wbt-server": 3389,
		"vnc": 5900, "SSH": 22}
	for name, port := range want {
		if p, ok := WellKnownPort(name); !ok || p != port {
			t.Errorf("WellKnownPort(%q) = %d, %v; want %d", name, p, ok, port)
		}
	}
	for _, name := range []string{"gopher", "www", ""} {
		if _, ok := WellKnownPort(name); ok {
			t.Errorf("WellKnownPort(%q) known", name)
		}
	}
}
