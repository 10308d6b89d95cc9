package knocker

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestParseConfig covers every record of CLASSIC-10.1 and the errors of
// CLASSIC-10.2.
func TestParseConfig(t *testing.T) {
	type want struct {
		group, secret, run string
		port               uint16
		warnings           []string // substrings, in order
	}
	for _, tc := range []struct {
		name, in string
		want     want
	}{
		{"empty", "", want{}},
		{"comments and blanks", "# c\n\n   # indented\n\t\n", want{}},
		{"group", "group alice\n", want{group: "alice"}},
		{"group 32", "group " + strings.Repeat("g", 32), want{group: strings.Repeat("g", 32)}},
		{"group punctuation", `group a!@$%^&*()_-+=|\[]{};:'"<>,?/`, want{group: `a!@$%^&*()_-+=|\[]{};:'"<>,?/`}},
		{"keyword case", "GROUP alice\nSecret s\npOrT 7\nRUN \"x\"", want{group: "alice", secret: "s", port: 7, run: "x"}},
		{"tabs and spaces", "\t group\t\talice  \t\n", want{group: "alice"}},
		{"trailing comment", "group alice # the team\nsecret s3cret#x\n", want{group: "alice", secret: "s3cret"}},
		{"secret", "secret s3cretKnock", want{secret: "s3cretKnock"}},
		{"port", "port 1001", want{port: 1001}},
		{"port max", "port 65535", want{port: 65535}},
		{"run quoted", `run "ssh -p %P% %H%"`, want{run: "ssh -p %P% %H%"}},
		{"run inner quotes", `run "sh -c "echo hi"" # c`, want{run: `sh -c "echo hi"`}},
		{"run hash inside quotes", `run "echo #1"`, want{run: "echo #1"}},
		{"run unquoted", "run ssh %H% # c", want{run: "ssh %H%"}},
		{"run empty", `run ""`, want{}},
		{"crlf", "group alice\r\nport 9\r\n", want{group: "alice", port: 9}},
		{"no final newline", "group alice", want{group: "alice"}},
		{"unknown keyword", "group alice\ninterface eth0\n", want{group: "alice", warnings: []string{`t:2: unknown keyword "interface"`}}},
		{"unknown bare keyword", "frobnicate\n", want{warnings: []string{`t:1: unknown keyword "frobnicate"`}}},
		{"repeat", "group alice\ngroup bob\n", want{group: "bob", warnings: []string{"t:2: group repeats line 1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig("t", strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			got := want{c.Group, string(c.Secret), c.Run, c.KnockPort, nil}
			if got.group != tc.want.group || got.secret != tc.want.secret || got.run != tc.want.run || got.port != tc.want.port {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if len(c.Warnings) != len(tc.want.warnings) {
				t.Fatalf("warnings %q, want %q", c.Warnings, tc.want.warnings)
			}
			for i, w := range tc.want.warnings {
				if !strings.Contains(c.Warnings[i], w) {
					t.Errorf("warning %q does not contain %q", c.Warnings[i], w)
				}
			}
			if c.Path != "t" {
				t.Errorf("Path = %q", c.Path)
			}
		})
	}
}

// TestParseConfigErrors checks CLASSIC-10.2: each error names file:line and
// the text, and never shows a secret.
func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
		msg      string
		is       error
	}{
		{"group missing value", "# c\ngroup\n", 2, "group: missing value", nil},
		{"group two words", "group al ice", 1, "want one value, have 2", nil},
		{"group too long", "group " + strings.Repeat("g", 33), 1, "bad group", ErrBadGroup},
		{"group bad char", "group al.ice", 1, "bad group", ErrBadGroup},
		{"secret missing", "group a\n\nsecret   # none\n", 3, "secret: missing value", nil},
		{"secret two words", "secret two words", 1, "want one value", nil},
		{"port zero", "port 0", 1, "not a UDP port", nil},
		{"port big", "port 65536", 1, "not a UDP port", nil},
		{"port text", "port ssh", 1, "not a UDP port", nil},
		{"port sign", "port +1", 1, "not a UDP port", nil},
		{"port missing", "port", 1, "port: missing value", nil},
		{"run unterminated", `run "ssh %H%`, 1, "missing closing double quote", nil},
		{"run trailing text", `run "ssh" now`, 1, "text after the closing quote", nil},
		{"long line", "group a\n" + strings.Repeat("x", maxConfigLine+1), 2, "line longer than", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("dir/f.cf", strings.NewReader(tc.in))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *ConfigError", err)
			}
			if ce.File != "dir/f.cf" || ce.Line != tc.line {
				t.Errorf("at %s:%d, want dir/f.cf:%d", ce.File, ce.Line, tc.line)
			}
			prefix := "dir/f.cf:" + strconv.Itoa(tc.line) + ": "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want prefix %q and %q", err, prefix, tc.msg)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if tc.name != "long line" && ce.Text == "" {
				t.Error("error does not carry the line's text")
			}
		})
	}
	_, err := ParseConfig("f", strings.NewReader("secret hunter2 extra\n"))
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "redacted") {
		t.Errorf("secret error %q must redact the secret", err)
	}
}

func TestParseConfigFiles(t *testing.T) {
	for _, tc := range []struct {
		file, group, secret, run string
		port                     uint16
		warnings                 int
		err                      string
	}{
		{file: "full.knockcf", group: "alice", secret: "s3cretKnock", port: 1001, run: "ssh -p %P% %H%"},
		{file: "quoted.knockcf", group: "alice", run: `sh -c "echo %H%:%P%"`},
		{file: "crlf.knockcf", group: "alice", secret: "x", port: 2001},
		{file: "unknown.knockcf", group: "bob", warnings: 2},
		{file: "bad-port.knockcf", err: "testdata/bad-port.knockcf:3: port:"},
		{file: "modern.knockcf", group: "alice", secret: "s3cretKnock"},
	} {
		f, err := os.Open(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseConfig("testdata/"+tc.file, f)
		f.Close()
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want prefix %q", tc.file, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if c.Group != tc.group || string(c.Secret) != tc.secret || c.KnockPort != tc.port || c.Run != tc.run || len(c.Warnings) != tc.warnings {
			t.Errorf("%s: got %+v", tc.file, c)
		}
	}
}

// TestLoadConfigPermissions checks CLASSIC-10.3.
func TestLoadConfigPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions on Windows")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, ".knockcf")
	if err := os.WriteFile(path, []byte("group alice\nsecret s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode fs.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o700, true}, {0o200, true},
		{0o640, false}, {0o604, false}, {0o620, false}, {0o602, false}, {0o610, false}, {0o601, false}, {0o666, false},
	} {
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(path)
		if tc.ok {
			if os.Geteuid() != 0 && tc.mode&0o400 == 0 {
				continue // the owner cannot read it either
			}
			if err != nil || c.Group != "alice" || c.Path != path {
				t.Errorf("mode %04o: %v %+v", tc.mode, err, c)
			}
			continue
		}
		if !errors.Is(err, ErrConfigPerm) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: err = %v, want ErrConfigPerm naming chmod 600 %s", tc.mode, err, path)
		}
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: err = %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("group alice\nport x\n"), 0o600)
	if _, err := LoadConfig(path); err == nil || !strings.HasPrefix(err.Error(), path+":2: ") {
		t.Errorf("bad line: err = %v, want %s:2:", err, path)
	}
}

func TestDefaultConfigPath(t *testing.T) {
	dir := t.TempDir()
	if runtime.GOOS == "windows" {
		t.Setenv("USERPROFILE", dir)
		if got := DefaultConfigPath(); got != filepath.Join(dir, "knock.cfg") {
			t.Errorf("DefaultConfigPath() = %q", got)
		}
		return
	}
	t.Setenv("HOME", dir)
	if got := DefaultConfigPath(); got != filepath.Join(dir, ".knockcf") {
		t.Errorf("DefaultConfigPath() = %q", got)
	}
}

func TestExpandRun(t *testing.T) {
	for _, tc := range []struct{ cmd, want string }{
		{"ssh -p %P% %H%", "ssh -p ssh door.example"},
		{"%H%%P%%H%", "door.examplesshdoor.example"},
		{"%h% %p% %X%", "%h% %p% %X%"},
		{"", ""},
	} {
		if got := ExpandRun(tc.cmd, "door.example", "ssh"); got != tc.want {
			t.Errorf("ExpandRun(%q) = %q, want %q", tc.cmd, got, tc.want)
		}
	}
}

// TestRunDisabled checks the -r values of CLASSIC-11.3 that turn the run
// command off.
func TestRunDisabled(t *testing.T) {
	for v, want := range map[string]bool{"0": true, "X": true, "x": true, "": true, "  ": true, " 0 ": true,
		"00": false, "xx": false, "ssh %H%": false, "false": false} {
		if got := RunDisabled(v); got != want {
			t.Errorf("RunDisabled(%q) = %v", v, got)
		}
	}
}

// TestParseConfigModern: the modern records are read from the same file as
// the classic ones (MODERN-12.22); a server record repeats only for the
// same host, and a private key pasted where its path belongs is never
// echoed.
func TestParseConfigModern(t *testing.T) {
	const (
		keyA = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
		keyB = "gOZUqYrpn91dNZ72SDx8PQNXBjhlIUEzcu64bq/6w1Y="
		priv = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
	)
	f, err := os.Open("testdata/modern.knockcf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ParseConfig("testdata/modern.knockcf", f)
	if err != nil {
		t.Fatal(err)
	}
	if c.Modern.PrivateKeyFile != filepath.Join("testdata", "keys", "knock.key") || c.Modern.Source != SourceSeen || len(c.Warnings) != 0 {
		t.Errorf("got %+v", c)
	}
	for host, want := range map[string]string{"GW.example.net": keyA, "2001:db8::1": keyB} {
		if k, ok := c.Modern.ServerKey(host); !ok || k.String() != want {
			t.Errorf("server %s: %v %v", host, k, ok)
		}
	}

	c, err = ParseConfig("t", strings.NewReader("server a.example "+keyA+"\nserver b.example "+keyB+"\nsource local\nSERVER A.example. "+keyB+"\nsource seen\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"t:4: server A.example. repeats line 1; the later record wins", "t:5: source repeats line 3; the later record wins"}
	if strings.Join(c.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings %q, want %q", c.Warnings, want)
	}
	if k, _ := c.Modern.ServerKey("a.example"); k.String() != keyB {
		t.Errorf("the later server record does not win: %v", k)
	}

	for _, tc := range []struct {
		in, want string
	}{
		{"group a\nprivate-key " + priv + "\n", `f:2: private-key: takes the path of a key file`},
		{"private-key   " + priv + "  # oops\n", `f:1: private-key: takes the path`},
		{"private-key a " + priv + "\n", `f:1: private-key: want one value, have 2: "private-key [redacted]"`},
		{"\nserver gw.example.net\n", `f:2: server: want a host and the doorman's public key, have 1 values: "server gw.example.net"`},
		{"server gw.example.net " + keyA[:40] + "\n", `f:1: server: gw.example.net: not a key`},
		{"source nat\n", `f:1: source: "nat" is not local, seen or an IP address: "source nat"`},
	} {
		_, err := ParseConfig("f", strings.NewReader(tc.in))
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %s", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), priv[:20]) {
			t.Errorf("%q: the error shows the private key: %v", tc.in, err)
		}
	}
}
