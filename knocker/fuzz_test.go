package knocker

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorman-project/doorman/protocol"
)

// FuzzParseConfig checks that any input either parses into values that obey
// CLASSIC-10.1 and survive a round trip, or fails with a *ConfigError that
// names a line.
func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.knockcf"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, s := range []string{
		"", "#", "group", "group alice", "GROUP alice # c\r\n", "port 65535\nport 0",
		`run "a "b" c"`, `run "`, `run "x" y`, "secret \x00\xff", "run\t\"%H%\"\n\n\nfoo bar",
		"group " + strings.Repeat("a", 40), strings.Repeat("x", 5000),
		"server h hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\nserver H. hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",
		"private-key k\nsource ::ffff:198.18.0.1", "server [fe80::1%eth0] hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseConfig("fz", strings.NewReader(in))
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.File != "fz" || ce.Line < 1 || !strings.HasPrefix(err.Error(), fmt.Sprintf("fz:%d: ", ce.Line)) {
				t.Fatalf("error %v is not a located *ConfigError", err)
			}
			return
		}
		if c.Group != "" && CheckGroup(c.Group) != nil {
			t.Fatalf("accepted bad group %q", c.Group)
		}
		if strings.ContainsAny(string(c.Secret), " \t\n#") {
			t.Fatalf("secret %q holds a blank or '#'", c.Secret)
		}
		if strings.Contains(c.Run, "\n") {
			t.Fatalf("run %q spans lines", c.Run)
		}
		// Write the values back and read them again.
		var b strings.Builder
		if c.Group != "" {
			fmt.Fprintf(&b, "group %s\n", c.Group)
		}
		if len(c.Secret) > 0 {
			fmt.Fprintf(&b, "secret %s\n", string(c.Secret))
		}
		if c.KnockPort != 0 {
			fmt.Fprintf(&b, "port %d\n", c.KnockPort)
		}
		if c.Run != "" {
			fmt.Fprintf(&b, "run \"%s\"\n", c.Run)
		}
		m := c.Modern
		if m.PrivateKeyFile != "" {
			fmt.Fprintf(&b, "private-key %s\n", m.PrivateKeyFile)
		}
		for host, k := range m.Servers {
			if k.Check() != nil {
				t.Fatalf("server %q with unusable key %v accepted", host, k)
			}
			fmt.Fprintf(&b, "server %s %s\n", host, k)
		}
		switch m.Source {
		case SourceFixed:
			fmt.Fprintf(&b, "source %s\n", m.SourceAddr)
		default:
			fmt.Fprintf(&b, "source %s\n", m.Source)
		}
		c2, err := ParseConfig("fz2", strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("round trip of %q: %v", b.String(), err)
		}
		if c2.Group != c.Group || string(c2.Secret) != string(c.Secret) || c2.KnockPort != c.KnockPort || c2.Run != c.Run || len(c2.Warnings) != 0 ||
			c2.Modern.PrivateKeyFile != m.PrivateKeyFile || !maps.Equal(c2.Modern.Servers, m.Servers) ||
			c2.Modern.Source != m.Source || c2.Modern.SourceAddr != m.SourceAddr {
			t.Fatalf("round trip changed %+v into %+v", c, c2)
		}
		if c.Group != "" && len(c.Secret) > 0 {
			if _, err := protocol.NewKnock(1, c.Group, 0, c.Secret); err != nil {
				t.Fatalf("config values do not make a knock: %v", err)
			}
		}
	})
}
