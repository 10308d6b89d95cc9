package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/knocker"
	"github.com/doorman-project/doorman/knocker/knockertest"
	"github.com/doorman-project/doorman/protocol"
)

// modernSite is a knocker's home with a key pair and a configuration
// naming a doorman's public key, as the README's steps leave it.
type modernSite struct {
	home   string
	client protocol.PrivateKey // the knocker's key, in ~/.knock.key
	server protocol.PrivateKey // the doorman's key
}

// newModernSite makes a fresh HOME with the knocker's key in ~/.knock.key
// and ~/.knockcf holding cfg, in which %SERVER% stands for the doorman's
// public key.
func newModernSite(t *testing.T, cfg string) *modernSite {
	t.Helper()
	s := &modernSite{home: t.TempDir()}
	t.Setenv("HOME", s.home)
	t.Setenv("USERPROFILE", s.home)
	var err error
	if s.client, err = protocol.NewPrivateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if s.server, err = protocol.NewPrivateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if err := knocker.WritePrivateKey(knocker.DefaultKeyPath(), &s.client); err != nil {
		t.Fatal(err)
	}
	s.writeConfig(t, cfg)
	return s
}

func (s *modernSite) writeConfig(t *testing.T, cfg string) {
	t.Helper()
	cfg = strings.ReplaceAll(cfg, "%SERVER%", s.server.Public().String())
	if err := os.WriteFile(knocker.DefaultConfigPath(), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// knock runs the program in the site's HOME.
func (s *modernSite) knock(stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// readModern receives one datagram and opens it with the doorman's key,
// as a doorman's protocol.Opener does.
func (s *modernSite) readModern(t *testing.T, c *net.UDPConn) (protocol.ModernKnock, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no knock received: %v", err)
	}
	if n != protocol.ModernKnockLen {
		t.Fatalf("received %d bytes, not a modern knock", n)
	}
	k, err := protocol.NewOpener(&s.server).Open(buf[:n])
	if err != nil {
		t.Fatalf("the doorman's key does not open the knock: %v", err)
	}
	if k.Client != s.client.Public() {
		t.Fatalf("knock from key %v, want the knocker's %v", k.Client, s.client.Public())
	}
	return k, from
}

// TestModernKnock is the loopback integration test of the modern client: a
// host with a server record gets a modern knock that the doorman's key
// opens (MODERN-12.3/1, MODERN-12.22), stating the source the
// configuration or --source asks for (MODERN-12.7, MODERN-12.15), from the
// knocker's clock (MODERN-12.9), over IPv4 and IPv6.
func TestModernKnock(t *testing.T) {
	for _, tc := range []struct {
		name, listen, host, network, cfg string
		args                             []string
		want                             string // stated source; "" = as seen
	}{
		{"local by default", "127.0.0.1:0", "127.0.0.1", "udp4", "", nil, "127.0.0.1"},
		{"config seen", "127.0.0.1:0", "127.0.0.1", "udp4", "source seen\n", nil, ""},
		{"config address", "127.0.0.1:0", "127.0.0.1", "udp4", "source 198.18.0.7\n", nil, "198.18.0.7"},
		{"--source local over config", "127.0.0.1:0", "127.0.0.1", "udp4", "source seen\n", []string{"--source", "local"}, "127.0.0.1"},
		{"--source seen", "127.0.0.1:0", "127.0.0.1", "udp4", "", []string{"--source=seen"}, ""},
		{"--source address", "127.0.0.1:0", "127.0.0.1", "udp4", "source seen\n", []string{"--source", "198.18.0.9"}, "198.18.0.9"},
		{"IPv6 local", "[::1]:0", "::1", "udp6", "", []string{"-6"}, "::1"},
		{"IPv6 bracketed, seen", "[::1]:0", "[::1]", "udp6", "source seen\n", nil, ""},
		{"IPv6 address", "[::1]:0", "::1", "udp6", "", []string{"--source", "2001:db8::7"}, "2001:db8::7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, port := receiver(t, tc.network, tc.listen)
			s := newModernSite(t, "group alice\nsecret s3cretKnock\nport "+port+"\nserver "+tc.host+" %SERVER%\n"+tc.cfg)
			before := time.Now()
			r := s.knock("", append(append([]string{"-v"}, tc.args...), tc.host, "ssh")...)
			if r.code != 0 || r.stdout != "" || !strings.HasPrefix(r.stderr, "knock: sent a modern knock to ") {
				t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			k, from := s.readModern(t, u)
			if k.Port != 22 || k.SourcePort != 0 {
				t.Errorf("asks for %+v", k.Request)
			}
			if got := ""; !k.AsSeen() {
				got = k.Source.String()
				if got != tc.want {
					t.Errorf("states source %s, want %q", got, tc.want)
				}
			} else if tc.want != "" {
				t.Errorf("as seen, want source %s", tc.want)
			}
			if door, err := k.Door(from.Addr()); (tc.want == "" || tc.want == from.Addr().String()) && (err != nil || door != from.Addr()) {
				t.Errorf("a doorman refuses it from %v: %v", from, err)
			}
			if _, err := protocol.CheckTime(k.Time, before, time.Second); err != nil {
				t.Errorf("time: %v", err)
			}
			if !strings.Contains(r.stderr, fmt.Sprintf("from %s ", from)) {
				t.Errorf("-v does not say where it sent from (%v): %q", from, r.stderr)
			}
		})
	}
}

// TestModernKnockHosts: a server record applies to the host as typed,
// compared as ServerKey does (an address in any of its spellings), and
// only to it; every other host gets a classic knock. Addresses only: a
// test must not send DNS queries.
func TestModernKnockHosts(t *testing.T) {
	u, port := receiver(t, "udp4", "127.0.0.1:0")
	s := newModernSite(t, "group alice\nsecret s3cretKnock\nport "+port+"\nserver ::FFFF:127.0.0.1 %SERVER%\n")
	for _, host := range []string{"127.0.0.1", "::ffff:127.0.0.1", "[::ffff:127.0.0.1]"} {
		if r := s.knock("", host, "2222"); r.code != 0 {
			t.Fatalf("%s: exit %d stderr %q", host, r.code, r.stderr)
		}
		if k, _ := s.readModern(t, u); k.Port != 2222 || k.Source != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("%s: %+v", host, k.Request)
		}
	}
	u2, port2 := receiver(t, "udp4", "127.0.0.2:0")
	s.writeConfig(t, "group alice\nsecret s3cretKnock\nport "+port2+"\nserver 127.0.0.1 %SERVER%\n")
	if r := s.knock("", "127.0.0.2", "2222"); r.code != 0 {
		t.Fatalf("classic: exit %d stderr %q", r.code, r.stderr)
	}
	if k := readKnock(t, u2); k.Port != 2222 {
		t.Errorf("classic knock %s", k.String())
	}
}

// TestModernDryRun: --dry-run prints the knock's hex, which the doorman's
// key opens, and sends nothing.
func TestModernDryRun(t *testing.T) {
	u, port := receiver(t, "udp4", "127.0.0.1:0")
	s := newModernSite(t, "port "+port+"\nserver 127.0.0.1 %SERVER%\n")
	r := s.knock("", "-v", "--dry-run", "127.0.0.1", "ssh")
	if r.code != 0 || !strings.Contains(r.stderr, "would send a modern knock to 127.0.0.1:"+port+" from 127.0.0.1:") || !strings.Contains(r.stderr, "states source 127.0.0.1") {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	p, err := hex.DecodeString(strings.TrimSuffix(r.stdout, "\n"))
	if err != nil || len(p) != protocol.ModernKnockLen {
		t.Fatalf("stdout %q is not one modern knock in hex", r.stdout)
	}
	if k, err := protocol.NewOpener(&s.server).Open(p); err != nil || k.Port != 22 || k.Client != s.client.Public() {
		t.Fatalf("opened %+v, %v", k, err)
	}
	u.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, err := u.ReadFrom(make([]byte, 512)); err == nil {
		t.Fatal("--dry-run sent a datagram")
	}
}

// TestModernWait: --wait with modern knocks against a stand-in doorman
// whose doors admit one connection each: the connection made after knock
// exits gets a door of its own, opened by a second knock later than the
// first (CLASSIC-11.6/1, MODERN-12.9).
func TestModernWait(t *testing.T) {
	s := newModernSite(t, "")
	d := knockertest.NewModernDoorman(t, &s.server, s.client.Public(), 5*time.Second)
	s.writeConfig(t, fmt.Sprintf("port %d\nserver 127.0.0.1 %%SERVER%%\n", d.KnockPort))
	door := fmt.Sprint(d.DoorPort)
	r := s.knock("", "-v", "--wait", "127.0.0.1", door)
	if r.code != 0 || !regexp.MustCompile(`^open after [0-9]+ ms\n$`).MatchString(r.stdout) {
		t.Fatalf("--wait: exit %d stdout %q stderr %q (doorman saw %q)", r.code, r.stdout, r.stderr, d.Events())
	}
	if n := strings.Count(r.stderr, "knock: sent a modern knock to 127.0.0.1:"); n != 2 {
		t.Errorf("verbose output reports %d knocks, want 2: %q", n, r.stderr)
	}
	c, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", door), 2*time.Second)
	if err != nil {
		t.Fatalf("connecting after knock --wait: %v (doorman saw %q)", err, d.Events())
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(io.LimitReader(c, 7)); string(b) != "door 2\n" {
		t.Fatalf("the user's connection got %q, want the second door", b)
	}

	// A key the doorman does not know opens nothing: exit 1 and the
	// modern hint.
	other := newModernSite(t, fmt.Sprintf("port %d\nserver 127.0.0.1 %s\n", d.KnockPort, s.server.Public()))
	r = other.knock("", "--wait=300ms", "127.0.0.1", door)
	if r.code != exitNotOpen || r.stdout != "" || r.stderr != notOpenedModern+"\n" {
		t.Fatalf("unknown key: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestModernProxyAndRun: --proxy relays through the door a modern knock
// opened, and the run record runs after a modern knock.
func TestModernProxyAndRun(t *testing.T) {
	u, port := receiver(t, "udp4", "127.0.0.1:0")
	echo := tcpListener(t, true)
	s := newModernSite(t, "port "+port+"\nserver 127.0.0.1 %SERVER%\nrun \"echo ran %H% %P%\"\n")
	in := "SSH-2.0-OpenSSH_9.9\r\n" + strings.Repeat("x", 10000)
	r := s.knock(in, "--proxy", "127.0.0.1", echo)
	if r.code != 0 || r.stdout != in {
		t.Fatalf("--proxy: exit %d, stdout %d bytes (want %d), stderr %q", r.code, len(r.stdout), len(in), r.stderr)
	}
	if k, _ := s.readModern(t, u); fmt.Sprint(k.Port) != echo {
		t.Errorf("asked for port %d, want %s", k.Port, echo)
	}
	if runtime.GOOS == "windows" {
		return
	}
	r = s.knock("", "127.0.0.1", "ssh")
	if r.code != 0 || r.stdout != "ran 127.0.0.1 ssh\n" {
		t.Fatalf("run: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	s.readModern(t, u)
}

// TestModernErrors: options only a classic knock uses, --source for a
// classic knock, and a missing or unsafe key file are errors that say what
// to do, with exit status 2 and nothing sent (MODERN-12.22).
func TestModernErrors(t *testing.T) {
	u, port := receiver(t, "udp4", "127.0.0.1:0")
	s := newModernSite(t, "group alice\nsecret s3cretKnock\nport "+port+"\nserver 127.0.0.1 %SERVER%\n")
	secret := filepath.Join(s.home, "secret")
	os.WriteFile(secret, []byte("s3cretKnock\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-s", "x", "127.0.0.1", "ssh"}, "knock: -s: 127.0.0.1 has a server record in " + knocker.DefaultConfigPath() + ", so it gets a modern knock"},
		{[]string{"-g", "alice", "--secret-file", secret, "127.0.0.1", "ssh"}, "knock: -g, --secret-file: 127.0.0.1 has a server record"},
		{[]string{"--secret-stdin", "127.0.0.1", "ssh"}, "knock: --secret-stdin: 127.0.0.1 has a server"},
		{[]string{"--dry-run", "--tag", "1", "127.0.0.1", "ssh"}, "knock: --tag: 127.0.0.1 has a server"},
		{[]string{"--source", "seen", "localhost.invalid", "ssh"}, "knock: --source is for modern knocks, and localhost.invalid has no server record in " + knocker.DefaultConfigPath()},
		{[]string{"--source", "nat", "127.0.0.1", "ssh"}, `knock: usage: --source: "nat" is not local, seen or an IP address`},
		{[]string{"--source", "fe80::1%lo", "127.0.0.1", "ssh"}, `knock: usage: --source: "fe80::1%lo" is not local, seen or an IP address`},
		{[]string{"--source", "2001:db8::1", "127.0.0.1", "ssh"}, "knock: knock: stated source address is of the other IP family"},
		{[]string{"-6", "--source", "198.18.0.1", "127.0.0.1", "ssh"}, "knock: knock: stated source address is of the other IP family: 198.18.0.1 over udp6"},
		{[]string{"127.0.0.1", "no-such-service"}, "knock: unknown service"},
	} {
		r := s.knock("s3cretKnock\n", tc.args...)
		if r.code != exitUsage || r.stdout != "" || !strings.HasPrefix(r.stderr, tc.want) {
			t.Errorf("knock %q: exit %d stdout %q stderr %q; want exit 2 and %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}

	keyFile := knocker.DefaultKeyPath()
	os.Rename(keyFile, keyFile+".away")
	r := s.knock("", "127.0.0.1", "ssh")
	if r.code != exitUsage || !strings.Contains(r.stderr, keyFile) || !strings.Contains(r.stderr, "make your key pair with: knock keygen\n") {
		t.Errorf("missing key: exit %d stderr %q", r.code, r.stderr)
	}
	r = s.knock("", "-f", knocker.DefaultConfigPath(), "127.0.0.1", "ssh")
	if !strings.Contains(r.stderr, "knock keygen -f "+knocker.DefaultConfigPath()+"\n") {
		t.Errorf("missing key with -f: stderr %q", r.stderr)
	}
	os.Rename(keyFile+".away", keyFile)
	if runtime.GOOS != "windows" {
		os.Chmod(keyFile, 0o640)
		r = s.knock("", "127.0.0.1", "ssh")
		if r.code != exitUsage || !strings.Contains(r.stderr, "chmod 600 "+keyFile) {
			t.Errorf("key readable by the group: exit %d stderr %q", r.code, r.stderr)
		}
		os.Chmod(keyFile, 0o600)
	}
	u.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, err := u.ReadFrom(make([]byte, 512)); err == nil {
		t.Fatal("a knock was sent")
	}
}
