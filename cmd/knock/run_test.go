package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/protocol"
)

// The 0.81 client's wire vector (reference section 1, CLASSIC-3.1).
const (
	vecPayload = "2222 alice 1900216097 6e5df0a5edc4d12ba369070be523e0d2"
	vecHex     = "3232323220616c6963652031393030323136303937203665356466306135656463346431326261333639303730626535323365306432"
	vecOut     = vecPayload + "\n" + vecHex + "\n"
	vecFlags   = "--tag=1900216097"
)

type result struct {
	code           int
	stdout, stderr string
}

// knock runs the program with a fresh HOME holding cfg as ~/.knockcf (none if
// cfg is "") and stdin as given.
func knock(t *testing.T, cfg string, stdin string, args ...string) result {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("USERPROFILE", home)
	if cfg != "" {
		if err := os.WriteFile(filepath.Join(home, ".knockcf"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// writeConfig writes a config file with mode and returns its path.
func writeConfig(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k.cf")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDryRun covers every way of giving the options of CLASSIC-11.3 and the
// config records of CLASSIC-10.1, checked against the wire vector.
func TestDryRun(t *testing.T) {
	full := "group alice\nsecret s3cretKnock\n"
	cfgFile := writeConfig(t, "# test\nGroup alice\nSECRET s3cretKnock\nport 1001\n", 0o600)
	for _, tc := range []struct {
		name, cfg, stdin string
		args             []string
	}{
		{"short flags", "", "", []string{"-g", "alice", "-s", "s3cretKnock", "--dry-run", vecFlags, "host", "2222"}},
		{"glued short flags", "", "", []string{"-galice", "-ss3cretKnock", "--print", vecFlags, "host", "2222"}},
		{"long flags", "", "", []string{"--group", "alice", "--secret=s3cretKnock", "--dry-run", "--tag", "1900216097", "host", "2222"}},
		{"options after operands", "", "", []string{"host", "-galice", "2222", "-s", "s3cretKnock", "--dry-run", vecFlags}},
		{"double dash", "", "", []string{"-galice", "-s", "s3cretKnock", "--dry-run", vecFlags, "--", "host", "2222"}},
		{"default config", full, "", []string{"--dry-run", vecFlags, "host", "2222"}},
		{"-f config", "", "", []string{"-f", cfgFile, "--dry-run", vecFlags, "host", "2222"}},
		{"--config=", "", "", []string{"--config=" + cfgFile, "--dry-run", vecFlags, "host", "2222"}},
		{"-g overrides config", "group bob\nsecret s3cretKnock\n", "", []string{"-g", "alice", "--dry-run", vecFlags, "host", "2222"}},
		{"-s overrides config", "group alice\nsecret wrong\n", "", []string{"-s", "s3cretKnock", "--dry-run", vecFlags, "host", "2222"}},
		{"secret from stdin", "group alice\n", "s3cretKnock\n", []string{"--dry-run", vecFlags, "host", "2222"}},
		{"secret from stdin crlf no config", "", "s3cretKnock\r\nmore", []string{"-g", "alice", "--dry-run", vecFlags, "host", "2222"}},
		{"secret from stdin without newline", "", "s3cretKnock", []string{"-g", "alice", "--dry-run", vecFlags, "host", "2222"}},
		{"run disabled", "", "", []string{"-galice", "-ss3cretKnock", "-r0", "--dry-run", vecFlags, "host", "2222"}},
		{"verbose", "", "", []string{"-v", "-galice", "-ss3cretKnock", "--dry-run", vecFlags, "host", "2222"}},
		{"ipv6 family", "", "", []string{"-6", "-galice", "-ss3cretKnock", "--dry-run", vecFlags, "host", "2222"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := knock(t, tc.cfg, tc.stdin, tc.args...)
			if r.code != 0 || r.stdout != vecOut {
				t.Fatalf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestDryRunDetails checks what verbose output and the knock port say, and
// that a service name goes out as its number (CLASSIC-11.2).
func TestDryRunDetails(t *testing.T) {
	cfgFile := writeConfig(t, "group alice\nsecret s\nport 4242\n", 0o600)
	for _, tc := range []struct {
		name       string
		args       []string
		wantOut    string // prefix of stdout
		wantStderr string
	}{
		{"config port", []string{"-v", "-f", cfgFile, "--dry-run", "h", "ssh"}, "22 alice ", "udp port 4242, asking for tcp port 22"},
		{"-p overrides", []string{"-v", "-f", cfgFile, "-p", "1234", "--dry-run", "h", "https"}, "443 alice ", "udp port 1234, asking"},
		{"-p glued", []string{"-v", "-f", cfgFile, "-p999", "--dry-run", "h", "1"}, "1 alice ", "udp port 999,"},
		{"--port", []string{"-v", "-f", cfgFile, "--port=65535", "--dry-run", "h", "65535"}, "65535 alice ", "udp port 65535,"},
		{"default port", []string{"-v", "-galice", "-ss", "--dry-run", "h", "ssh"}, "22 alice ", "udp port 1001,"},
		{"cluster -v4", []string{"-v4", "-galice", "-ss", "--dry-run", "h", "postgresql"}, "5432 alice ", "udp port 1001,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := knock(t, "", "", tc.args...)
			if r.code != 0 || !strings.HasPrefix(r.stdout, tc.wantOut) || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Fatalf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if len(lines) != 2 || fmt.Sprintf("%x", lines[0]) != lines[1] {
				t.Errorf("dry run output %q: want the payload and its hex", r.stdout)
			}
		})
	}
	// Without --tag every dry run draws a fresh tag (CLASSIC-3.3/1).
	a := knock(t, "", "", "-galice", "-ss", "--dry-run", "h", "22")
	b := knock(t, "", "", "-galice", "-ss", "--dry-run", "h", "22")
	if a.stdout == b.stdout {
		t.Errorf("two dry runs printed the same knock %q", a.stdout)
	}
}

func TestHelpVersion(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-h", "extra", "operands", "here"}} {
		r := knock(t, "", "", args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: knock") || !strings.Contains(r.stdout, "--proxy") || r.stderr != "" {
			t.Errorf("%v: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	r := knock(t, "", "", "--version")
	if r.code != 0 || !regexp.MustCompile(`^knock \(doorman\) \d+\.\d+\.\d+\S* \(protocols: classic 1\.0/Doorman 0\.81, modern 2\)\n$`).MatchString(r.stdout) {
		t.Errorf("--version: exit %d stdout %q", r.code, r.stdout)
	}
}

// TestUsageErrors checks exit status 2 and a message naming the problem.
func TestUsageErrors(t *testing.T) {
	okCfg := writeConfig(t, "group alice\nsecret s\n", 0o600)
	badLine := writeConfig(t, "group alice\n# fine\nport seventy\n", 0o600)
	badGroup := writeConfig(t, "group al.ice\n", 0o600)
	openCfg := writeConfig(t, "group alice\nsecret s\n", 0o644)
	missing := filepath.Join(t.TempDir(), "nope.cf")
	for _, tc := range []struct {
		name, cfg, stdin string
		args             []string
		want             string
	}{
		{"no operands", "", "", nil, "want host and service, have 0"},
		{"one operand", "", "", []string{"host"}, "have 1"},
		{"three operands", "", "", []string{"a", "b", "c"}, "have 3"},
		{"unknown short", "", "", []string{"-z", "h", "22"}, "unknown option -z"},
		{"unknown long", "", "", []string{"--frob", "h", "22"}, "unknown option --frob"},
		{"flag value on switch", "", "", []string{"--verbose=1", "h", "22"}, "--verbose takes no value"},
		{"missing value -g", "", "", []string{"h", "22", "-g"}, "-g needs a value"},
		{"missing value --secret", "", "", []string{"h", "22", "--secret"}, "--secret needs a value"},
		{"empty -s", "", "", []string{"-s", "", "h", "22"}, "-s needs a secret"},
		{"empty -f", "", "", []string{"-f", "", "h", "22"}, "-f needs a file name"},
		{"-p zero", "", "", []string{"-p", "0", "h", "22"}, `-p "0"`},
		{"-p big", "", "", []string{"-p70000", "h", "22"}, `-p "70000"`},
		{"-p text", "", "", []string{"--port=knock", "h", "22"}, `-p "knock"`},
		{"-4 and -6", "", "", []string{"-4", "-6", "h", "22"}, "-4 and -6"},
		{"--tag without dry run", "", "", []string{"--tag=1", "h", "22"}, "--tag is only for --dry-run"},
		{"--tag not a number", "", "", []string{"--tag=x", "--dry-run", "h", "22"}, `--tag "x"`},
		{"--wait bad", "", "", []string{"--wait=soon", "h", "22"}, `--wait="soon"`},
		{"--wait negative", "", "", []string{"--wait=-1s", "h", "22"}, "must be positive"},
		{"--wait zero", "", "", []string{"--wait=0", "h", "22"}, "must be positive"},
		{"-r with --wait", "", "", []string{"-r", "ssh %H%", "--wait", "h", "22"}, "-r cannot be combined"},
		{"-r with --proxy", "", "", []string{"-r0", "--proxy", "h", "22"}, "-r cannot be combined"},
		{"no group", "", "", []string{"-s", "x", "--dry-run", "h", "22"}, "no group: give -g or a group record"},
		{"bad group", "", "", []string{"-g", "al ice", "-s", "x", "h", "22"}, `bad group name`},
		{"long group", "", "", []string{"-g", strings.Repeat("a", 33), "-s", "x", "h", "22"}, `bad group name`},
		{"unknown service", "", "", []string{"-g", "a", "-s", "x", "h", "nosuchservice-dmkn"}, `unknown service "nosuchservice-dmkn"`},
		{"service zero", "", "", []string{"-g", "a", "-s", "x", "h", "0"}, `unknown service "0"`},
		{"unknown host (no IPv6 address)", "", "", []string{"-6", "-g", "a", "-s", "x", "127.0.0.1", "22"}, `unknown host "127.0.0.1": no IPv6 address`},
		{"unknown host (no IPv4 address)", "", "", []string{"-4", "-g", "a", "-s", "x", "::1", "22"}, `unknown host "::1": no IPv4 address`},
		{"empty secret on stdin", "", "\n", []string{"-g", "a", "h", "22"}, "empty secret"},
		{"no secret on stdin", "", "", []string{"-g", "a", "h", "22"}, "reading the secret"},
		{"missing -f file", "", "", []string{"-f", missing, "h", "22"}, "nope.cf"},
		{"bad config line", "", "", []string{"-f", badLine, "h", "22"}, badLine + `:3: port: "seventy" is not a UDP port 1-65535: "port seventy"`},
		{"bad config group", "", "", []string{"-f", badGroup, "h", "22"}, badGroup + ":1: bad group"},
		{"config readable by others", "", "", []string{"-f", openCfg, "h", "22"}, "chmod 600 " + openCfg},
		{"bad default config", "port 0\n", "", []string{"-g", "a", "-s", "x", "h", "22"}, ".knockcf:1: port"},
		{"ok config, bad -p", "", "", []string{"-f", okCfg, "-p", "-1", "h", "22"}, `-p "-1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := knock(t, tc.cfg, tc.stdin, tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and %q", r.code, r.stdout, r.stderr, tc.want)
			}
			if !strings.HasPrefix(r.stderr, "knock: ") {
				t.Errorf("stderr %q does not start with the program name", r.stderr)
			}
		})
	}
}

// TestConfigWarnings: no ~/.knockcf is not an error, and config
// warnings go to stderr (CLASSIC-10.2).
func TestConfigWarnings(t *testing.T) {
	r := knock(t, "", "", "-g", "a", "-s", "x", "--dry-run", "h", "22")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("missing default config: exit %d stderr %q", r.code, r.stderr)
	}
	r = knock(t, "group alice\nsecret s\ninterface eth0\n", "", "--dry-run", "h", "22")
	if r.code != 0 || !strings.Contains(r.stderr, `warning: `) || !strings.Contains(r.stderr, `.knockcf:3: unknown keyword "interface" ignored`) {
		t.Errorf("unknown keyword: exit %d stderr %q", r.code, r.stderr)
	}
}

// receiver is a loopback stand-in for a doorman's knock port.
func receiver(t *testing.T, network, addr string) (*net.UDPConn, string) {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("no loopback %s: %v", network, err)
	}
	t.Cleanup(func() { c.Close() })
	_, port, _ := net.SplitHostPort(c.LocalAddr().String())
	return c.(*net.UDPConn), port
}

func readKnock(t *testing.T, c *net.UDPConn) protocol.Knock {
	t.Helper()
	buf := make([]byte, 512)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no knock received: %v", err)
	}
	var k protocol.Knock
	if err := protocol.ParseKnock(buf[:n], &k); err != nil {
		t.Fatalf("received %q: %v", buf[:n], err)
	}
	if !k.VerifyMAC(protocol.Secret("s3cretKnock")) {
		t.Fatalf("received %q does not verify", buf[:n])
	}
	return k
}

// TestSend sends real knocks to loopback (CLASSIC-11.1, CLASSIC-2.7).
func TestSend(t *testing.T) {
	u4, p4 := receiver(t, "udp4", "127.0.0.1:0")
	r := knock(t, "", "", "-v", "-g", "alice", "-s", "s3cretKnock", "-p", p4, "127.0.0.1", "ssh")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "knock: sent \"22 alice ") || !strings.Contains(r.stderr, "127.0.0.1:"+p4) {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if k := readKnock(t, u4); k.Port != 22 || k.GroupString() != "alice" {
		t.Errorf("knock %s", k.String())
	}
	r = knock(t, "group alice\nsecret s3cretKnock\nport "+p4+"\n", "", "-4", "127.0.0.1", "2222")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("config knock: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if k := readKnock(t, u4); k.Port != 2222 {
		t.Errorf("knock %s", k.String())
	}

	u6, p6 := receiver(t, "udp6", "[::1]:0")
	r = knock(t, "", "", "-6", "-g", "alice", "-s", "s3cretKnock", "-p", p6, "::1", "2222")
	if r.code != 0 {
		t.Fatalf("-6: exit %d stderr %q", r.code, r.stderr)
	}
	readKnock(t, u6)
}

func tcpListener(t *testing.T, echo bool) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if echo {
				go func() { io.Copy(c, c); c.Close() }()
			} else {
				c.Close()
			}
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func closedTCPPort(t *testing.T) string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}

func TestWait(t *testing.T) {
	u, kp := receiver(t, "udp4", "127.0.0.1:0")
	open := tcpListener(t, false)
	base := []string{"-g", "alice", "-s", "s3cretKnock", "-p", kp}

	r := knock(t, "", "", append(base, "--wait", "127.0.0.1", open)...)
	if r.code != 0 || !regexp.MustCompile(`^open after [0-9]+ ms\n$`).MatchString(r.stdout) {
		t.Fatalf("--wait open: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	readKnock(t, u)

	// A config run record is ignored with --wait: the door has one connection.
	r = knock(t, "run \"echo ran\"\n", "", append(base, "-v", "--wait=5s", "127.0.0.1", open)...)
	if r.code != 0 || strings.Contains(r.stdout, "ran") || !strings.Contains(r.stderr, "ignoring the config's run record") {
		t.Fatalf("--wait with config run: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	readKnock(t, u)

	r = knock(t, "", "", append(base, "--wait=300ms", "127.0.0.1", closedTCPPort(t))...)
	if r.code != 1 || r.stdout != "" || r.stderr != "knock: no door opened (check group, secret, port, your address)\n" {
		t.Fatalf("--wait closed: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	readKnock(t, u)
}

func TestProxy(t *testing.T) {
	u, kp := receiver(t, "udp4", "127.0.0.1:0")
	echo := tcpListener(t, true)
	in := "SSH-2.0-OpenSSH_9.9\r\n" + strings.Repeat("x", 100000)
	r := knock(t, "", in, "-v", "-g", "alice", "-s", "s3cretKnock", "-p", kp, "--proxy", "127.0.0.1", echo)
	if r.code != 0 || r.stdout != in {
		t.Fatalf("--proxy: exit %d, stdout %d bytes (want %d), stderr %q", r.code, len(r.stdout), len(in), r.stderr)
	}
	readKnock(t, u)

	r = knock(t, "", "data", "-g", "alice", "-s", "s3cretKnock", "-p", kp, "--proxy", "--wait=300ms", "127.0.0.1", closedTCPPort(t))
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "no door opened") {
		t.Fatalf("--proxy closed: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	readKnock(t, u)
}

// TestRun checks the run command of CLASSIC-10.1 and the -r values of
// CLASSIC-11.3.
func TestRun(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses sh")
	}
	u, kp := receiver(t, "udp4", "127.0.0.1:0")
	base := []string{"-g", "alice", "-s", "s3cretKnock", "-p", kp}
	for _, tc := range []struct {
		name, cfg string
		args      []string
		code      int
		stdout    string
	}{
		{"-r", "", []string{"-r", "echo host=%H% port=%P%"}, 0, "host=127.0.0.1 port=ssh\n"},
		{"--run=", "", []string{"--run=echo %P%"}, 0, "ssh\n"},
		{"config run", "run \"echo cfg %H%\"\n", nil, 0, "cfg 127.0.0.1\n"},
		{"-r overrides config", "run \"echo cfg\"\n", []string{"-r", "echo cli"}, 0, "cli\n"},
		{"-r0", "run \"echo cfg\"\n", []string{"-r0"}, 0, ""},
		{"-r 0", "run \"echo cfg\"\n", []string{"-r", "0"}, 0, ""},
		{"-rX", "run \"echo cfg\"\n", []string{"-rX"}, 0, ""},
		{"-rx", "run \"echo cfg\"\n", []string{"-rx"}, 0, ""},
		{"-r blank", "run \"echo cfg\"\n", []string{"-r", " "}, 0, ""},
		{"-r empty", "run \"echo cfg\"\n", []string{"-r", ""}, 0, ""},
		{"exit status", "", []string{"-r", "exit 3"}, 3, ""},
		{"stdin passed", "", []string{"-r", "cat"}, 0, "to the program\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append(append([]string{}, base...), tc.args...), "127.0.0.1", "ssh")
			r := knock(t, tc.cfg, "to the program\n", args...)
			if r.code != tc.code || r.stdout != tc.stdout {
				t.Fatalf("exit %d stdout %q stderr %q; want %d %q", r.code, r.stdout, r.stderr, tc.code, tc.stdout)
			}
			readKnock(t, u)
		})
	}
}

func TestParseWait(t *testing.T) {
	for in, want := range map[string]time.Duration{"5s": 5 * time.Second, "250ms": 250 * time.Millisecond, "2": 2 * time.Second, "1m": time.Minute} {
		if got, err := parseWait(in); err != nil || got != want {
			t.Errorf("parseWait(%q) = %v, %v", in, got, err)
		}
	}
	o, err := parseArgs([]string{"h", "s"})
	if err != nil || o.wait != defaultWait || o.waitSet {
		t.Errorf("default wait: %+v %v", o, err)
	}
	o, err = parseArgs([]string{"--wait", "h", "s"})
	if err != nil || o.wait != 5*time.Second || !o.waitSet || o.host != "h" || o.service != "s" {
		t.Errorf("--wait alone: %+v %v", o, err)
	}
}
