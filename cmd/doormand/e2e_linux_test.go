package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/protocol"
)

// These tests run the real doormand and knock binaries in two network
// namespaces (server 198.18.0.1, client 198.18.0.2) whose server drops all
// input by default, once per firewall backend and admin ruleset (issue
// "doormand ... end to end"). Namespaces are named dmd-<random>-{s,c} and
// removed on cleanup.

const (
	serverIP  = "198.18.0.1"
	clientIP  = "198.18.0.2"
	serverIP6 = "2001:db8::1"
	clientIP6 = "2001:db8::2"
	svcPort   = 2222
	secret    = "s3cretKnock"
)

type e2e struct {
	t         *testing.T
	dir       string
	prefix    string
	srv, cli  string // namespace names
	bin       string
	backend   string
	daemon    *exec.Cmd
	logPath   string
	evPath    string
	listeners []net.Listener
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and firewall rules")
	}
	for _, tool := range []string{"ip", "nft", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (make deps installs it)", tool)
		}
	}
}

var builtDir string

func buildBinaries(t *testing.T) string {
	t.Helper()
	if builtDir != "" {
		return builtDir
	}
	dir, err := os.MkdirTemp("", "dmd-bin-")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"doormand", "knock"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, c), "../"+c)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", c, err, out)
		}
	}
	builtDir = dir
	return dir
}

func must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newE2E(t *testing.T, backend, ruleset, extraCfg string) *e2e {
	return newE2EWith(t, backend, ruleset, extraCfg, "")
}

// newE2EWith is newE2E with more lines for the guest list.
func newE2EWith(t *testing.T, backend, ruleset, extraCfg, extraGuests string) *e2e {
	requireRoot(t)
	bin := buildBinaries(t)
	var r [3]byte
	rand.Read(r[:])
	prefix := "dmd-" + hex.EncodeToString(r[:])
	e := &e2e{t: t, dir: t.TempDir(), prefix: prefix, srv: prefix + "-s", cli: prefix + "-c", bin: bin, backend: backend}
	t.Cleanup(e.teardown)
	must(t, "ip", "netns", "add", e.srv)
	must(t, "ip", "netns", "add", e.cli)
	must(t, "ip", "link", "add", prefix+"a", "netns", e.srv, "type", "veth", "peer", "name", prefix+"b", "netns", e.cli)
	must(t, "ip", "-n", e.srv, "addr", "add", serverIP+"/24", "dev", prefix+"a")
	must(t, "ip", "-n", e.cli, "addr", "add", clientIP+"/24", "dev", prefix+"b")
	must(t, "ip", "-n", e.srv, "addr", "add", serverIP6+"/64", "dev", prefix+"a", "nodad")
	must(t, "ip", "-n", e.cli, "addr", "add", clientIP6+"/64", "dev", prefix+"b", "nodad")
	for _, x := range [][2]string{{e.srv, prefix + "a"}, {e.cli, prefix + "b"}, {e.srv, "lo"}, {e.cli, "lo"}} {
		must(t, "ip", "-n", x[0], "link", "set", x[1], "up")
	}
	e.sh(e.srv, ruleset)

	cf := fmt.Sprintf("interface %sa\nport 1001\nwaitfor 2\nconnection-delay-1 500000\nconnection-delay-2 1\n"+
		"guestlist %s/guests\nhash-archive %s/replay\npidfile %s/pid\nloglevel debug\nstats-interval 0\n",
		prefix, e.dir, e.dir, e.dir)
	switch backend {
	case "nftables", "iptables":
		cf += "firewall " + backend + "\nnft-table " + "doorman\n"
	case "script":
		scripts, _ := filepath.Abs("../../daemon/firewall/scripts")
		cf += fmt.Sprintf("firewall-add %s/iptables-add\nfirewall-del %s/iptables-del\n", scripts, scripts)
	}
	cf += extraCfg
	os.WriteFile(filepath.Join(e.dir, "doormand.cf"), []byte(cf), 0o600)
	os.WriteFile(filepath.Join(e.dir, "guests"), []byte("alice "+secret+" 2222 22 198.18.0.0/24 2001:db8::/64\n"+extraGuests), 0o600)
	e.listen()
	e.start()
	return e
}

func (e *e2e) sh(ns, script string) {
	e.t.Helper()
	if script == "" {
		return
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "sh", "-ec", script)
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("in %s: %s: %v\n%s", ns, script, err, out)
	}
}

func (e *e2e) out(ns string, args ...string) string {
	out, _ := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out)
}

// inNS runs fn on a thread switched into ns.
func inNS(t *testing.T, ns string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	fn()
}

// listen starts a TCP service in the server namespace that greets and
// keeps each connection until the client closes it.
func (e *e2e) listen() {
	inNS(e.t, e.srv, func() {
		for _, addr := range []string{serverIP + ":2222", serverIP + ":22", serverIP + ":80", "[" + serverIP6 + "]:2222"} {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				e.t.Fatal(err)
			}
			e.listeners = append(e.listeners, l)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() {
						c.Write([]byte("hello\n"))
						buf := make([]byte, 64)
						for {
							if _, err := c.Read(buf); err != nil {
								c.Close()
								return
							}
						}
					}()
				}
			}()
		}
	})
}

// dial connects from the client namespace; nil if the port is closed.
func (e *e2e) dial(port int) net.Conn { return e.dialTo(serverIP, port) }

// dialTo is dial to a given server address.
func (e *e2e) dialTo(host string, port int) net.Conn {
	var c net.Conn
	inNS(e.t, e.cli, func() {
		var err error
		c, err = net.DialTimeout("tcp", net.JoinHostPort(host, fmt.Sprint(port)), time.Second)
		if err != nil {
			c = nil
			return
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "hello\n" {
			c.Close()
			c = nil
		}
	})
	return c
}

func (e *e2e) start() {
	e.t.Helper()
	run := time.Now().UnixNano()
	e.logPath = filepath.Join(e.dir, fmt.Sprintf("doormand-%d.log", run))
	e.evPath = filepath.Join(e.dir, fmt.Sprintf("events-%d.jsonl", run))
	logf, _ := os.Create(e.logPath)
	cmd := exec.Command("ip", "netns", "exec", e.srv, filepath.Join(e.bin, "doormand"), "-D",
		"--events", e.evPath, "-f", filepath.Join(e.dir, "doormand.cf"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.daemon = cmd
	// Ready means the firewall is in place: no sleep needed.
	e.waitEvent(func(ev event) bool { return ev.is("ready") }, 10*time.Second, "ready")
}

func (e *e2e) log() string { b, _ := os.ReadFile(e.logPath); return string(b) }

// event is one record of doormand's event stream (--events).
type event map[string]any

func (ev event) is(kind string) bool { return ev["event"] == kind }
func (ev event) str(k string) string { s, _ := ev[k].(string); return s }

// events reads this run's event stream.
func (e *e2e) events() []event {
	b, _ := os.ReadFile(e.evPath)
	var out []event
	for _, line := range strings.Split(string(b), "\n") {
		var ev event
		if json.Unmarshal([]byte(line), &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

func (e *e2e) countEvents(match func(event) bool) int {
	n := 0
	for _, ev := range e.events() {
		if match(ev) {
			n++
		}
	}
	return n
}

// waitEvents waits until at least n events match.
func (e *e2e) waitEvents(match func(event) bool, n int, within time.Duration, what string) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for e.countEvents(match) < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("%d events %q after %v, want %d; log:\n%s", e.countEvents(match), what, within, n, e.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *e2e) waitEvent(match func(event) bool, within time.Duration, what string) {
	e.t.Helper()
	e.waitEvents(match, 1, within, what)
}

// Event matchers.
func doorClosed(why string) func(event) bool {
	return func(ev event) bool { return ev.is("door") && ev.str("state") == "closed" && ev.str("why") == why }
}
func knockRefused(reason string) func(event) bool {
	return func(ev event) bool {
		return ev.is("knock") && ev.str("verdict") == "rejected" && ev.str("reason") == reason
	}
}
func doorArmed(ev event) bool { return ev.is("door") && ev.str("state") == "armed" }

func (e *e2e) stop(sig syscall.Signal) error {
	if e.daemon == nil {
		return nil
	}
	e.daemon.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- e.daemon.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(40 * time.Second):
		e.daemon.Process.Kill()
		err = fmt.Errorf("doormand did not stop")
	}
	e.daemon = nil
	return err
}

func (e *e2e) teardown() {
	if e.t.Failed() {
		e.t.Logf("server ruleset at failure:\n%s", e.out(e.srv, "iptables", "-S", "-v"))
	}
	if e.daemon != nil {
		e.stop(syscall.SIGKILL)
	}
	for _, l := range e.listeners {
		l.Close()
	}
	exec.Command("ip", "netns", "del", e.srv).Run()
	exec.Command("ip", "netns", "del", e.cli).Run()
	if e.t.Failed() {
		e.t.Logf("doormand log:\n%s", e.log())
		e.t.Logf("server ruleset:\n%s\n%s", e.out(e.srv, "iptables", "-S", "-v"), e.out(e.srv, "nft", "list", "ruleset"))
	}
}

// knockPayload makes a payload with the knock binary (dry run) and sends it
// from the client namespace with a plain UDP socket, so a test can resend
// the very same bytes.
func (e *e2e) knockPayload(port int) []byte {
	out, err := exec.Command(filepath.Join(e.bin, "knock"), "--dry-run", "-g", "alice", "-s", secret, serverIP, fmt.Sprint(port)).Output()
	if err != nil {
		e.t.Fatalf("knock --dry-run: %v", err)
	}
	return []byte(strings.SplitN(string(out), "\n", 2)[0])
}

func (e *e2e) send(payload []byte) time.Time {
	var t0 time.Time
	inNS(e.t, e.cli, func() {
		c, err := net.Dial("udp", serverIP+":1001")
		if err != nil {
			e.t.Fatal(err)
		}
		t0 = time.Now()
		c.Write(payload)
		c.Close()
	})
	return t0
}

func (e *e2e) knock(port int) {
	e.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", e.cli, filepath.Join(e.bin, "knock"), "-g", "alice", "-s", secret,
		serverIP, fmt.Sprint(port)).CombinedOutput()
	if err != nil {
		e.t.Fatalf("knock: %v\n%s", err, out)
	}
}

// assertSilent sends a knock (valid) and junk from a connected UDP socket
// and checks that nothing answers, not even an ICMP port-unreachable that
// the next read would report as "connection refused" (CLASSIC-4.2,
// CLASSIC-4.2/2: with no admin ruleset, doorman's own table drops them).
func (e *e2e) assertSilent() {
	e.t.Helper()
	inNS(e.t, e.cli, func() {
		c, err := net.Dial("udp", serverIP+":1001")
		if err != nil {
			e.t.Fatal(err)
		}
		defer c.Close()
		for _, p := range [][]byte{[]byte("junk"), []byte("2222 alice 0000000001 00000000000000000000000000000000")} {
			c.Write(p)
			time.Sleep(50 * time.Millisecond)
		}
		c.Write([]byte("more junk"))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			e.t.Fatalf("the knock port answered: %d bytes, %v (CLASSIC-4.2)", n, err)
		}
	})
}

// doorRules lists what the firewall holds for doors: the elements of
// doorman's door sets, and with the script backend the scripts' rules.
func (e *e2e) doorRules() []string {
	var lines []string
	for _, l := range strings.Split(e.out(e.srv, "nft", "list", "table", "inet", "doorman"), "\n") {
		if strings.Contains(l, "elements = ") && (strings.Contains(l, clientIP) || strings.Contains(l, clientIP6)) {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	if e.backend == "script" {
		for _, l := range strings.Split(e.out(e.srv, "iptables", "-S", "INPUT"), "\n") {
			if strings.Contains(l, "--dport 2222") || strings.Contains(l, "--dport 22 ") {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

func (e *e2e) waitNoRules(within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for len(e.doorRules()) > 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("door rules still present after %v: %v", within, e.doorRules())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const (
	nftPolicyDrop = `nft -f - <<'EOF'
table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    meta l4proto ipv6-icmp accept
    meta mark & 0x00100000 == 0x00100000 accept
  }
}
EOF`
	iptPolicyDropMark = `iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A INPUT -i lo -j ACCEPT
iptables -A INPUT -m mark --mark 0x00100000/0x00100000 -j ACCEPT
iptables -P INPUT DROP`
	iptPolicyDrop = `iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A INPUT -i lo -j ACCEPT
iptables -P INPUT DROP`
)

// TestIntegrationDoormand is the acceptance run, per backend:
// closed -> knock -> connect -> second connection refused -> rule gone
// after the connection ends -> waitfor expiry -> replay refused, also
// after kill -9 and restart, which leaves no rule of the killed run.
func TestIntegrationDoormand(t *testing.T) {
	for _, c := range []struct{ name, backend, ruleset, cfg string }{
		{"nftables-native-policy-drop", "nftables", nftPolicyDrop, ""},
		{"nftables-iptables-policy-drop", "nftables", iptPolicyDropMark, ""},
		{"nftables-doorman-protects", "nftables", "", "protect 2222 22 80\n"},
		{"iptables", "iptables", iptPolicyDrop, ""},
		{"script-0.81-iptables-scripts", "script", iptPolicyDrop, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newE2E(t, c.backend, c.ruleset, c.cfg)
			e.assertSilent()

			if conn := e.dial(svcPort); conn != nil {
				conn.Close()
				t.Fatal("port open before any knock")
			}
			e.knock(svcPort)
			e.waitRules(3 * time.Second)
			conn := e.dial(svcPort)
			if conn == nil {
				t.Fatal("door did not open after a valid knock")
			}
			if c2 := e.dial(svcPort); c2 != nil {
				c2.Close()
				t.Fatal("a second connection from another source port got in (CLASSIC-6.2)")
			}
			if c3 := e.dial(22); c3 != nil {
				c3.Close()
				t.Fatal("the knock for 2222 opened port 22")
			}
			if len(e.doorRules()) == 0 {
				t.Fatal("no door rule while the connection is open")
			}
			conn.Close()
			e.waitNoRules(4 * time.Second) // connection-delay-2 1 s (CLASSIC-6.6)
			if c4 := e.dial(svcPort); c4 != nil {
				c4.Close()
				t.Fatal("port open after the connection ended")
			}

			// waitfor (2 s) expiry without a connection (CLASSIC-6.3).
			e.knock(svcPort)
			e.waitEvent(doorClosed("waitfor"), 5*time.Second, "closed after waitfor")
			e.waitNoRules(2 * time.Second)
			if c5 := e.dial(svcPort); c5 != nil {
				c5.Close()
				t.Fatal("port open after waitfor")
			}

			// Replay (CLASSIC-5.1).
			p := e.knockPayload(svcPort)
			e.send(p)
			e.waitRules(3 * time.Second)
			e.send(p)
			e.waitEvents(knockRefused("replay"), 1, 3*time.Second, "replay")

			// kill -9 with a door open, restart: no rule of the killed run
			// is left (CLASSIC-6.9), and both knocks are still replays
			// (CLASSIC-5.5/1, CLASSIC-5.5/2).
			e.waitNoRules(5 * time.Second)
			p2 := e.knockPayload(svcPort)
			e.send(p2)
			e.waitRules(3 * time.Second)
			e.stop(syscall.SIGKILL)
			e.start()
			e.waitNoRules(3 * time.Second)
			e.send(p2)
			e.send(p)
			e.waitEvents(knockRefused("replay"), 2, 3*time.Second, "replay")
			if c6 := e.dial(svcPort); c6 != nil {
				c6.Close()
				t.Fatal("port open after replays")
			}

			// SIGTERM: exit 0 and nothing of doorman's left (CLASSIC-6.8).
			e.knock(svcPort)
			e.waitRules(3 * time.Second)
			if err := e.stop(syscall.SIGTERM); err != nil {
				t.Fatalf("doormand exit after SIGTERM: %v", err)
			}
			if r := e.doorRules(); len(r) != 0 {
				t.Fatalf("rules left after SIGTERM: %v", r)
			}
			switch c.backend {
			case "nftables":
				if out := e.out(e.srv, "nft", "list", "tables"); strings.Contains(out, "doorman") {
					t.Fatalf("table left after SIGTERM: %s", out)
				}
			case "iptables":
				if out := e.out(e.srv, "iptables", "-S"); strings.Contains(out, "DOORMAN") {
					t.Fatalf("chain left after SIGTERM: %s", out)
				}
			}
		})
	}
}

func (e *e2e) waitRules(within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for len(e.doorRules()) == 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("no door rule after %v", within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIntegrationLatency measures knock-on-the-wire to door-in-force over
// 100 knocks with the nftables backend and reports p50/p99. The door is
// in force when doormand reports it armed (the event is written right
// after the backend's netlink batch returned); the knock time is taken
// just before the client's sendto. Both clocks are this host's.
func TestIntegrationLatency(t *testing.T) {
	e := newE2E(t, "nftables", nftPolicyDrop, "")
	const n = 100
	var lat []time.Duration
	for i := range n {
		// Alternate the two ports and keep each connection open: a door is
		// free again once its connection is established, so no knock
		// waits behind the one before.
		port := []int{svcPort, 22}[i%2]
		p := e.knockPayload(port)
		before := e.countEvents(doorArmed)
		t0 := e.send(p)
		e.waitEvents(doorArmed, before+1, 3*time.Second, "armed")
		var t1 time.Time
		for _, ev := range e.events() {
			if doorArmed(ev) {
				t1, _ = time.Parse(time.RFC3339Nano, ev.str("time"))
			}
		}
		lat = append(lat, t1.Sub(t0))
		c := e.dial(port)
		if c == nil {
			t.Fatalf("knock %d: the door did not let the connection in", i)
		}
		defer c.Close()
	}
	slices.Sort(lat)
	t.Logf("knock-to-door latency over %d knocks (nftables, veth): p50 %v, p99 %v, max %v", n, lat[n/2], lat[n*99/100], lat[n-1])
	fmt.Printf("LATENCY knock-to-door n=%d p50=%v p99=%v max=%v\n", n, lat[n/2], lat[n*99/100], lat[n-1])
}

// TestIntegrationKnockWait: `knock --wait` against doormand reports the door
// open (exit 0), and with a wrong secret reports that no door opened and
// exits non-zero.
func TestIntegrationKnockWait(t *testing.T) {
	e := newE2E(t, "nftables", nftPolicyDrop, "")
	knock := func(secret string) (string, int) {
		cmd := exec.Command("ip", "netns", "exec", e.cli, filepath.Join(e.bin, "knock"), "--wait=2s",
			"-g", "alice", "-s", secret, serverIP, fmt.Sprint(svcPort))
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := knock(secret)
	if code != 0 || !strings.Contains(out, "open after") {
		t.Fatalf("knock --wait with the right secret: exit %d, %q", code, out)
	}
	t.Logf("right secret: %s", strings.TrimSpace(out))
	// --wait left a fresh door for the user's connection: use it, or the
	// next probe would get it.
	conn := e.dial(svcPort)
	if conn == nil {
		t.Fatal("no door for the connection after knock --wait")
	}
	conn.Close()
	out, code = knock("wrong-secret")
	if code == 0 || !strings.Contains(out, "no door opened") {
		t.Fatalf("knock --wait with a wrong secret: exit %d, %q", code, out)
	}
	e.waitEvent(knockRefused("incorrect-secret"), 2*time.Second, "incorrect secret")
}

// TestIntegrationIPv6: a knock over IPv6 opens an IPv6 door for one
// connection, which closes after the connection ends (CLASSIC-2.7, with the
// nftables and iptables backends).
func TestIntegrationIPv6(t *testing.T) {
	ip6Drop := iptPolicyDrop + `
ip6tables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
ip6tables -A INPUT -p ipv6-icmp -j ACCEPT
ip6tables -A INPUT -i lo -j ACCEPT
ip6tables -P INPUT DROP`
	for _, c := range []struct{ backend, ruleset string }{
		{"nftables", nftPolicyDrop},
		{"iptables", ip6Drop},
	} {
		t.Run(c.backend, func(t *testing.T) {
			e := newE2E(t, c.backend, c.ruleset, "")
			if conn := e.dialTo(serverIP6, svcPort); conn != nil {
				conn.Close()
				t.Fatal("port open over IPv6 before any knock")
			}
			out, err := exec.Command("ip", "netns", "exec", e.cli, filepath.Join(e.bin, "knock"), "-6",
				"-g", "alice", "-s", secret, serverIP6, fmt.Sprint(svcPort)).CombinedOutput()
			if err != nil {
				t.Fatalf("knock -6: %v\n%s", err, out)
			}
			e.waitRules(3 * time.Second)
			conn := e.dialTo(serverIP6, svcPort)
			if conn == nil {
				t.Fatal("IPv6 door did not open")
			}
			if c2 := e.dialTo(serverIP6, svcPort); c2 != nil {
				c2.Close()
				t.Fatal("a second IPv6 connection got in (CLASSIC-6.2)")
			}
			if e.countEvents(func(ev event) bool { return ev.is("knock") && ev.str("src") == clientIP6 }) == 0 {
				t.Fatal("the knock was not reported with its IPv6 source")
			}
			conn.Close()
			e.waitNoRules(4 * time.Second)
		})
	}
}

// TestIntegrationCrashThenBadStore: doormand is killed with a door armed,
// and the next start fails because the replay store cannot be opened. The
// failed start must still remove the killed run's door (audit finding 5):
// leftovers are removed before anything else (CLASSIC-6.9/2).
func TestIntegrationCrashThenBadStore(t *testing.T) {
	e := newE2E(t, "nftables", nftPolicyDrop, "")
	e.knock(svcPort)
	e.waitRules(3 * time.Second)
	e.stop(syscall.SIGKILL)
	if len(e.doorRules()) == 0 {
		t.Fatal("the killed run left no door: the test shows nothing")
	}
	if err := os.WriteFile(filepath.Join(e.dir, "replay"), []byte("not a replay store, not a 0.81 archive"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", e.srv, filepath.Join(e.bin, "doormand"), "-D",
		"-f", filepath.Join(e.dir, "doormand.cf")).CombinedOutput()
	if err == nil {
		t.Fatalf("doormand started with a broken replay store:\n%s", out)
	}
	if !strings.Contains(string(out), "replay") {
		t.Fatalf("the failed start does not name the replay store:\n%s", out)
	}
	if r := e.doorRules(); len(r) != 0 {
		t.Fatalf("the failed start left the killed run's door: %v", r)
	}
	if c := e.dial(svcPort); c != nil {
		c.Close()
		t.Fatal("port open after the failed start")
	}
}

// TestIntegrationCaptureSocket: with capture socket the knock datagrams
// must reach the socket through doorman's own table and the admin's drop
// policy (audit finding 10), and the door works as with the other modes.
func TestIntegrationCaptureSocket(t *testing.T) {
	e := newE2E(t, "nftables", nftPolicyDrop, "capture socket\n")
	e.knock(svcPort)
	e.waitRules(3 * time.Second)
	conn := e.dial(svcPort)
	if conn == nil {
		t.Fatal("door did not open after a knock received on the socket")
	}
	defer conn.Close()
	if c2 := e.dial(svcPort); c2 != nil {
		c2.Close()
		t.Fatal("a second connection got in (CLASSIC-6.2)")
	}
}

// TestIntegrationShortConnection: a connection that ends within a
// millisecond of starting still uses up its door: no second connection,
// and the door closes at once rather than staying armed (audit finding 9),
// with every backend (CLASSIC-6.5/3).
func TestIntegrationShortConnection(t *testing.T) {
	for _, c := range []struct{ backend, ruleset string }{
		{"nftables", nftPolicyDrop},
		{"iptables", iptPolicyDrop},
		{"script", iptPolicyDrop},
	} {
		t.Run(c.backend, func(t *testing.T) {
			e := newE2E(t, c.backend, c.ruleset, "")
			e.knock(svcPort)
			e.waitRules(3 * time.Second)
			conn := e.dial(svcPort)
			if conn == nil {
				t.Fatal("door did not open")
			}
			conn.Close()
			e.waitEvent(doorClosed("connection-ended"), 3*time.Second, "closed after the short connection")
			for range 3 {
				if c2 := e.dial(svcPort); c2 != nil {
					c2.Close()
					t.Fatal("a second connection got in after a short first one")
				}
			}
			e.waitNoRules(3 * time.Second)
		})
	}
}

// modernE2E is an e2e run with the modern protocol: the doorman's key pair,
// a modern guest bob (ports 2222 and 22 from 198.18.0.0/24) beside the
// classic alice, and the client's key and .knockcf with the doorman's
// server record.
type modernE2E struct {
	*e2e
	server, client protocol.PrivateKey
	knockcf        string
}

// raceIP is a second address of the client namespace: an attacker on the
// client's network, inside bob's address entries.
const raceIP = "198.18.0.3"

func newModernE2E(t *testing.T, backend, ruleset, extraCfg string) *modernE2E {
	requireRoot(t)
	keys := t.TempDir()
	m := &modernE2E{server: newKey(t), client: newKey(t)}
	if err := config.WritePrivateKey(filepath.Join(keys, "doormand.key"), &m.server); err != nil {
		t.Fatal(err)
	}
	if err := config.WritePrivateKey(filepath.Join(keys, "knock.key"), &m.client); err != nil {
		t.Fatal(err)
	}
	m.knockcf = filepath.Join(keys, "knockcf")
	os.WriteFile(m.knockcf, []byte(fmt.Sprintf("server %s %s\nprivate-key %s\n", serverIP, m.server.Public(),
		filepath.Join(keys, "knock.key"))), 0o600)
	m.e2e = newE2EWith(t, backend, ruleset, extraCfg+"private-key "+filepath.Join(keys, "doormand.key")+"\n",
		"bob pubkey."+m.client.Public().String()+" 2222 22 198.18.0.0/24 2001:db8::/64\n")
	must(t, "ip", "-n", m.cli, "addr", "add", raceIP+"/24", "dev", m.prefix+"b")
	return m
}

func newKey(t *testing.T) protocol.PrivateKey {
	k, err := protocol.NewPrivateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// knockModern runs the knock binary in the client namespace: a modern
// knock, since .knockcf has a server record for the host.
func (m *modernE2E) knockModern(args ...string) {
	m.t.Helper()
	args = append([]string{"netns", "exec", m.cli, filepath.Join(m.bin, "knock"), "-f", m.knockcf}, args...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		m.t.Fatalf("knock %v: %v\n%s", args, err, out)
	}
}

// modernPayload is what knock --dry-run makes for port: a modern knock
// stating the client's address, made now.
func (m *modernE2E) modernPayload(port int) []byte {
	m.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", m.cli, filepath.Join(m.bin, "knock"), "-f", m.knockcf, "--dry-run",
		serverIP, fmt.Sprint(port)).Output()
	if err != nil {
		m.t.Fatalf("knock --dry-run: %v", err)
	}
	p, err := hex.DecodeString(strings.TrimSpace(string(out)))
	if err != nil || len(p) != protocol.ModernKnockLen {
		m.t.Fatalf("knock --dry-run printed %q", out)
	}
	return p
}

// seal makes a knock from the client's key to server for r, with r.Time
// now if unset.
func (m *modernE2E) seal(server protocol.PublicKey, r protocol.Request) []byte {
	m.t.Helper()
	if r.Time == 0 {
		r.Time = uint64(time.Now().UnixNano())
	}
	p, err := protocol.SealKnock(nil, &m.client, server, &r, rand.Reader)
	if err != nil {
		m.t.Fatal(err)
	}
	return p
}

// sendFrom sends payload from the client namespace's address src.
func (e *e2e) sendFrom(src string, payload []byte) {
	e.t.Helper()
	inNS(e.t, e.cli, func() {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP(serverIP), Port: 1001})
		if err != nil {
			e.t.Fatal(err)
		}
		c.Write(payload)
		c.Close()
	})
}

// dialFromPort is dial from the client's TCP source port sport.
func (e *e2e) dialFromPort(sport, port int) net.Conn {
	var c net.Conn
	inNS(e.t, e.cli, func() {
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP), Port: sport}}
		var err error
		if c, err = d.Dial("tcp", net.JoinHostPort(serverIP, fmt.Sprint(port))); err != nil {
			c = nil
			return
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hello\n" {
			c.Close()
			c = nil
		}
	})
	return c
}

func knockAccepted(protocol string) func(event) bool {
	return func(ev event) bool {
		return ev.is("knock") && ev.str("verdict") == "accepted" && ev.str("protocol") == protocol
	}
}

// counter asks doormand for its counters (SIGUSR1) and returns name's.
func (e *e2e) counter(name string) float64 {
	e.t.Helper()
	isCounters := func(ev event) bool { return ev.is("counters") }
	n := e.countEvents(isCounters)
	e.daemon.Process.Signal(syscall.SIGUSR1)
	e.waitEvents(isCounters, n+1, 3*time.Second, "counters")
	var v float64
	for _, ev := range e.events() {
		if ev.is("counters") {
			c, _ := ev["counters"].(map[string]any)
			v, _ = c[name].(float64)
		}
	}
	return v
}

// TestIntegrationModern is the modern protocol's acceptance run (issue
// "modern protocol", phase 2b): a modern knock opens a door for one
// connection; replayed, also after a restart and after kill -9, it is
// stale (MODERN-12.17); raced from another address it is refused and the
// real client still gets in (MODERN-12.15); a knock for another doorman is
// dropped at mac1 (MODERN-12.6); a skewed clock is refused with its skew
// in the event (MODERN-12.14); classic off, set by a reload, refuses
// classic knocks and keeps modern ones (MODERN-12.20/3).
func TestIntegrationModern(t *testing.T) {
	m := newModernE2E(t, "nftables", nftPolicyDrop, "")

	// The knock binary's modern knock: one connection.
	m.knockModern(serverIP, fmt.Sprint(svcPort))
	m.waitEvent(doorArmed, 3*time.Second, "door armed for a modern knock")
	conn := m.dial(svcPort)
	if conn == nil {
		t.Fatal("door did not open after a modern knock")
	}
	if c2 := m.dial(svcPort); c2 != nil {
		c2.Close()
		t.Fatal("a second connection got in (CLASSIC-6.2)")
	}
	conn.Close()
	for _, ev := range m.events() {
		if knockAccepted("modern")(ev) && (ev.str("group") != "bob" || ev.str("source") != "stated" || ev.str("src") != clientIP) {
			t.Fatalf("accepted knock reported as %v", ev)
		}
	}

	// Replayed: stale.
	p := m.modernPayload(svcPort)
	m.send(p)
	m.waitEvents(knockAccepted("modern"), 2, 3*time.Second, "second modern knock accepted")
	m.send(p)
	m.waitEvent(knockRefused("stale"), 3*time.Second, "replay refused as stale")
	m.waitEvents(doorArmed, 2, 3*time.Second, "door armed for the second knock")
	if conn := m.dial(svcPort); conn == nil { // the door of the knock, not of its replay
		t.Fatal("no door for the second knock")
	} else {
		conn.Close()
	}
	if c := m.dial(svcPort); c != nil {
		c.Close()
		t.Fatal("the replay opened a door")
	}

	// Raced from another address: refused, and the genuine knock, which
	// arrives second, opens the door for the client.
	raced := m.modernPayload(svcPort)
	m.sendFrom(raceIP, raced)
	m.waitEvent(knockRefused("source-mismatch"), 3*time.Second, "raced knock refused")
	m.sendFrom(clientIP, raced)
	m.waitEvents(knockAccepted("modern"), 3, 3*time.Second, "genuine knock accepted after the race")
	m.waitEvents(doorArmed, 3, 3*time.Second, "door armed after the race")
	if conn := m.dial(svcPort); conn == nil {
		t.Fatal("the client did not get in after the raced knock")
	} else {
		conn.Close()
	}

	// For another doorman: dropped at mac1, counted, no door.
	other := newKey(t)
	m.send(m.seal(other.Public(), protocol.Request{Port: svcPort, Source: netip.MustParseAddr(clientIP)}))
	deadline := time.Now().Add(3 * time.Second)
	for m.counter("bad-mac1") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the knock for another doorman was not counted as bad-mac1")
		}
	}

	// A clock 93 s ahead: refused, and the event says by how much.
	m.send(m.seal(m.server.Public(), protocol.Request{Time: uint64(time.Now().Add(93 * time.Second).UnixNano()),
		Port: svcPort, Source: netip.MustParseAddr(clientIP)}))
	m.waitEvent(knockRefused("clock-skew"), 3*time.Second, "skewed knock refused")
	for _, ev := range m.events() {
		if knockRefused("clock-skew")(ev) {
			if skew, _ := ev["skew_ms"].(float64); skew < 92000 || skew > 94000 {
				t.Fatalf("skew reported as %v ms, want about 93000", ev["skew_ms"])
			}
		}
	}
	if c := m.dial(svcPort); c != nil {
		c.Close()
		t.Fatal("port open after the refused knocks")
	}

	// Stale after a restart and after kill -9 (MODERN-12.17/2).
	p2 := m.modernPayload(svcPort)
	m.send(p2)
	m.waitEvents(knockAccepted("modern"), 4, 3*time.Second, "knock before the kill")
	m.stop(syscall.SIGKILL)
	m.start()
	m.send(p2)
	m.send(p)
	m.waitEvents(knockRefused("stale"), 2, 3*time.Second, "stale after kill -9")
	if err := m.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("doormand exit after SIGTERM: %v", err)
	}
	m.start()
	m.send(p2)
	m.waitEvents(knockRefused("stale"), 1, 3*time.Second, "stale after a restart")

	// classic off, by a reload: classic knocks are refused, modern ones
	// still open doors.
	cf := filepath.Join(m.dir, "doormand.cf")
	b, _ := os.ReadFile(cf)
	os.WriteFile(cf, append(b, "classic off\n"...), 0o600)
	m.daemon.Process.Signal(syscall.SIGHUP)
	m.waitEvent(func(ev event) bool { return ev.is("reload") && ev["ok"] == true }, 3*time.Second, "reload")
	m.knock(svcPort)
	m.waitEvent(knockRefused("classic-disabled"), 3*time.Second, "classic knock refused")
	if c := m.dial(svcPort); c != nil {
		c.Close()
		t.Fatal("a classic knock opened a door with classic off")
	}
	m.knockModern(serverIP, fmt.Sprint(svcPort))
	m.waitEvent(doorArmed, 3*time.Second, "door armed for a modern knock with classic off")
	if conn := m.dial(svcPort); conn == nil {
		t.Fatal("no door for a modern knock with classic off")
	} else {
		conn.Close()
	}

	// knock --wait, with which the README has a user check the setup.
	armed := m.countEvents(doorArmed)
	if out, err := exec.Command("ip", "netns", "exec", m.cli, filepath.Join(m.bin, "knock"), "-f", m.knockcf,
		"--wait=2s", serverIP, fmt.Sprint(svcPort)).CombinedOutput(); err != nil {
		t.Fatalf("knock --wait: %v\n%s", err, out)
	}
	m.waitEvents(doorArmed, armed+2, 3*time.Second, "the fresh door knock --wait leaves")
	if conn := m.dial(svcPort); conn == nil {
		t.Fatal("no door after knock --wait")
	} else {
		conn.Close()
	}
}

// TestIntegrationModernSourcePort: a knock that states its TCP source port
// opens a door for that 4-tuple only (MODERN-12.18), with the nftables and
// the script backends.
func TestIntegrationModernSourcePort(t *testing.T) {
	for _, c := range []struct{ backend, ruleset string }{
		{"nftables", nftPolicyDrop},
		{"script", iptPolicyDrop},
	} {
		t.Run(c.backend, func(t *testing.T) {
			m := newModernE2E(t, c.backend, c.ruleset, "waitfor 4\n")
			const sport = 40123
			m.send(m.seal(m.server.Public(), protocol.Request{Port: svcPort, Source: netip.MustParseAddr(clientIP), SourcePort: sport}))
			m.waitEvent(func(ev event) bool { return knockAccepted("modern")(ev) && ev["src_port"] == float64(sport) },
				3*time.Second, "knock with a source port accepted")
			m.waitRules(3 * time.Second)
			if conn := m.dialFromPort(sport+1, svcPort); conn != nil {
				conn.Close()
				t.Fatal("another source port got through a pinned door")
			}
			if conn := m.dial(svcPort); conn != nil {
				conn.Close()
				t.Fatal("any source port got through a pinned door")
			}
			conn := m.dialFromPort(sport, svcPort)
			if conn == nil {
				t.Fatal("the stated 4-tuple did not get through")
			}
			conn.Close()
			m.waitNoRules(4 * time.Second)
		})
	}
}
