package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/daemon/config"
	dt "github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
	"github.com/doorman-project/doorman/protocol"
)

// These tests run the real doormand and knock binaries in two network
// namespaces of an internal/netsim run (client .1, server .2 of one link)
// whose server drops all input by default, once per firewall backend and
// admin ruleset (issue "doormand ... end to end"). They read doormand's
// event stream, never its log.

const (
	svcPort = 2222
	secret  = "s3cretKnock"
)

type e2e struct {
	t          *testing.T
	srv, cli   *netsim.Host
	srv4, cli4 netip.Addr
	srv6, cli6 netip.Addr
	cliIf      string       // the client's interface
	srvIf      string       // the server's interface, which doormand watches
	cliNet4    netip.Prefix // the link's IPv4 subnet
	bin        string
	backend    string
	d          *dt.Daemon
}

func TestMain(m *testing.M) {
	code := m.Run()
	dt.RemoveBuilt()
	os.Exit(code)
}

func requireTools(t *testing.T) {
	for _, tool := range []string{"ip", "nft", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (make deps installs it)", tool)
		}
	}
}

func newE2E(t *testing.T, backend, ruleset, extraCfg string) *e2e {
	return newE2EWith(t, backend, ruleset, extraCfg, "")
}

// newE2EWith is newE2E with more lines for the guest list, and tweaks to
// how doormand is started.
func newE2EWith(t *testing.T, backend, ruleset, extraCfg, extraGuests string, tweaks ...func(*dt.Options)) *e2e {
	requireTools(t)
	n := netsim.ForTest(t, "dmd")
	e := &e2e{t: t, bin: dt.Binaries(t), backend: backend}
	e.cli, e.srv = n.AddHostForTest(t, "c"), n.AddHostForTest(t, "s")
	l, err := n.Link(e.cli, e.srv, netsim.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.cli4, e.cli6, e.srv4, e.srv6 = l.A.Addr4, l.A.Addr6, l.B.Addr4, l.B.Addr6
	e.cliIf, e.cliNet4 = l.A.Name, l.A.Prefix4
	e.sh(e.srv, ruleset)

	var fw string
	switch backend {
	case "nftables", "iptables":
		fw = "firewall " + backend + "\nnft-table doorman\n"
	case "script":
		scripts, _ := filepath.Abs("../../daemon/firewall/scripts")
		fw = fmt.Sprintf("firewall-add %s/iptables-add\nfirewall-del %s/iptables-del\n", scripts, scripts)
	}
	e.listen()
	o := dt.Options{
		Binary: filepath.Join(e.bin, "doormand"),
		Dir:    t.TempDir(),
		Config: dt.Config(l.B.Name, 2*time.Second, fw, extraCfg),
		Guests: fmt.Sprintf("alice %s 2222 22 %s %s\n", secret, l.A.Prefix4, l.A.Prefix6) + extraGuests,
	}
	for _, tw := range tweaks {
		tw(&o)
	}
	e.srvIf = l.B.Name
	e.d, err = dt.Start(t.Context(), e.srv, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.teardown)
	return e
}

// sh runs a shell script in h.
func (e *e2e) sh(h *netsim.Host, script string) {
	e.t.Helper()
	if script == "" {
		return
	}
	if out, err := h.Command(e.t.Context(), "sh", "-ec", script).CombinedOutput(); err != nil {
		e.t.Fatalf("in %s: %s: %v\n%s", h.Name(), script, err, out)
	}
}

func (e *e2e) out(h *netsim.Host, args ...string) string {
	out, _ := h.Command(context.Background(), args[0], args[1:]...).CombinedOutput()
	return string(out)
}

// listen starts the greeting service in the server on the ports the tests
// use, until the test ends.
func (e *e2e) listen() {
	for _, a := range []netip.AddrPort{
		netip.AddrPortFrom(e.srv4, svcPort), netip.AddrPortFrom(e.srv4, 22), netip.AddrPortFrom(e.srv4, 80),
		netip.AddrPortFrom(e.srv6, svcPort),
	} {
		if err := dt.Serve(e.t.Context(), e.srv, a); err != nil {
			e.t.Fatal(err)
		}
	}
}

// dial connects from the client; nil if the port is closed.
func (e *e2e) dial(port int) net.Conn { return e.dialTo(e.srv4, port) }

// dialTo is dial to a given server address.
func (e *e2e) dialTo(host netip.Addr, port int) net.Conn {
	return dt.Dial(e.cli, netip.AddrPortFrom(host, uint16(port)), time.Second, 2*time.Second)
}

// waitEvents waits until at least n events match, or fails the test.
func (e *e2e) waitEvents(match dt.Match, n int, within time.Duration, what string) {
	e.t.Helper()
	if _, err := e.d.Wait(match, n, within); err != nil {
		e.t.Fatalf("%s: %v; log:\n%s", what, err, e.d.LogTail(60))
	}
}

func (e *e2e) waitEvent(match dt.Match, within time.Duration, what string) {
	e.t.Helper()
	e.waitEvents(match, 1, within, what)
}

func (e *e2e) teardown() {
	if e.t.Failed() {
		e.t.Logf("server ruleset at failure:\n%s\n%s", e.out(e.srv, "iptables", "-S", "-v"), e.out(e.srv, "nft", "list", "ruleset"))
		e.t.Logf("doormand log:\n%s", e.d.Log())
	}
	e.d.Kill()
	if err := e.d.Stream.Err(); err != nil {
		e.t.Errorf("event stream: %v", err)
	}
}

// knockPayload makes a payload with the knock binary (dry run), so a test
// can send the very same bytes again.
func (e *e2e) knockPayload(port int) []byte {
	out, err := exec.Command(filepath.Join(e.bin, "knock"), "--dry-run", "-g", "alice", "-s", secret, e.srv4.String(), fmt.Sprint(port)).Output()
	if err != nil {
		e.t.Fatalf("knock --dry-run: %v", err)
	}
	return []byte(strings.SplitN(string(out), "\n", 2)[0])
}

// send sends payload to the knock port from the client with a plain UDP
// socket and returns when it was sent.
func (e *e2e) send(payload []byte) time.Time {
	var t0 time.Time
	err := e.cli.Do(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(e.srv4, dt.KnockPort).String())
		if err != nil {
			return err
		}
		defer c.Close()
		t0 = time.Now()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return t0
}

// knock runs the knock binary in the client.
func (e *e2e) knock(args ...string) (string, int) {
	e.t.Helper()
	cmd := e.cli.Command(e.t.Context(), filepath.Join(e.bin, "knock"), args...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return string(out), code
}

func (e *e2e) mustKnock(port int) {
	e.t.Helper()
	if out, code := e.knock("-g", "alice", "-s", secret, e.srv4.String(), fmt.Sprint(port)); code != 0 {
		e.t.Fatalf("knock: exit %d\n%s", code, out)
	}
}

// assertSilent sends a knock (valid) and junk from a connected UDP socket
// and checks that nothing answers, not even an ICMP port-unreachable that
// the next read would report as "connection refused" (CLASSIC-4.2,
// CLASSIC-4.2/2: with no admin ruleset, doorman's own table drops them).
func (e *e2e) assertSilent() {
	e.t.Helper()
	err := e.cli.Do(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(e.srv4, dt.KnockPort).String())
		if err != nil {
			return err
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
			return fmt.Errorf("the knock port answered: %d bytes, %v (CLASSIC-4.2)", n, err)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// doorRules lists what the firewall holds for doors: the elements of
// doorman's door sets, and with the script backend the scripts' rules.
func (e *e2e) doorRules() []string {
	var lines []string
	for _, l := range strings.Split(e.out(e.srv, "nft", "list", "table", "inet", "doorman"), "\n") {
		if strings.Contains(l, "elements = ") && (strings.Contains(l, e.cli4.String()) || strings.Contains(l, e.cli6.String())) {
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
			// Each backend has namespaces of its own; most of the time
			// is waiting for doors to expire and dials to time out.
			t.Parallel()
			e := newE2E(t, c.backend, c.ruleset, c.cfg)
			e.assertSilent()

			if conn := e.dial(svcPort); conn != nil {
				conn.Close()
				t.Fatal("port open before any knock")
			}
			e.mustKnock(svcPort)
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
			e.mustKnock(svcPort)
			e.waitEvent(dt.Closed("waitfor"), 5*time.Second, "closed after waitfor")
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
			e.waitEvents(dt.Rejected("replay"), 1, 3*time.Second, "replay")

			// kill -9 with a door open, restart: no rule of the killed run
			// is left (CLASSIC-6.9), and both knocks are still replays
			// (CLASSIC-5.5/1, CLASSIC-5.5/2).
			e.waitNoRules(5 * time.Second)
			p2 := e.knockPayload(svcPort)
			e.send(p2)
			e.waitRules(3 * time.Second)
			if err := e.d.Kill(); err != nil {
				t.Fatal(err)
			}
			if err := e.d.Restart(t.Context()); err != nil {
				t.Fatal(err)
			}
			e.waitNoRules(3 * time.Second)
			e.send(p2)
			e.send(p)
			e.waitEvents(dt.Rejected("replay"), 2, 3*time.Second, "replay")
			if c6 := e.dial(svcPort); c6 != nil {
				c6.Close()
				t.Fatal("port open after replays")
			}

			// SIGTERM: exit 0 and nothing of doorman's left (CLASSIC-6.8).
			e.mustKnock(svcPort)
			e.waitRules(3 * time.Second)
			if err := e.d.Stop(); err != nil {
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
		armed := dt.DoorState(dt.StateArmed)
		before := e.d.Count(armed)
		t0 := e.send(p)
		e.waitEvents(armed, before+1, 3*time.Second, "armed")
		ev, _ := e.d.Last(armed)
		lat = append(lat, ev.Time.Sub(t0))
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
		return e.knock("--wait=2s", "-g", "alice", "-s", secret, e.srv4.String(), fmt.Sprint(svcPort))
	}
	out, code := knock(secret)
	if code != 0 || !strings.Contains(out, "open after") {
		t.Fatalf("knock --wait with the right secret: exit %d, %q", code, out)
	}
	t.Logf("right secret: %s", strings.TrimSpace(out))
	// --wait left a fresh door for the user's connection: use it, or the
	// next probe would get it. The fresh door waits (queued) until doormand
	// sees the probe's connection end, up to connection-delay-2 (1 s here),
	// so the connection is made the way ssh makes it: the kernel resends a
	// SYN that found no door after 1 s, and the dial allows for that.
	conn := dt.Dial(e.cli, netip.AddrPortFrom(e.srv4, svcPort), 3*time.Second, 2*time.Second)
	if conn == nil {
		t.Fatal("no door for the connection after knock --wait")
	}
	conn.Close()
	out, code = knock("wrong-secret")
	if code == 0 || !strings.Contains(out, "no door opened") {
		t.Fatalf("knock --wait with a wrong secret: exit %d, %q", code, out)
	}
	e.waitEvent(dt.Rejected("incorrect-secret"), 2*time.Second, "incorrect secret")
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
			t.Parallel()
			e := newE2E(t, c.backend, c.ruleset, "")
			if conn := e.dialTo(e.srv6, svcPort); conn != nil {
				conn.Close()
				t.Fatal("port open over IPv6 before any knock")
			}
			if out, code := e.knock("-6", "-g", "alice", "-s", secret, e.srv6.String(), fmt.Sprint(svcPort)); code != 0 {
				t.Fatalf("knock -6: exit %d\n%s", code, out)
			}
			e.waitRules(3 * time.Second)
			conn := e.dialTo(e.srv6, svcPort)
			if conn == nil {
				t.Fatal("IPv6 door did not open")
			}
			if c2 := e.dialTo(e.srv6, svcPort); c2 != nil {
				c2.Close()
				t.Fatal("a second IPv6 connection got in (CLASSIC-6.2)")
			}
			if e.d.Count(dt.IsKind(dt.KindKnock).From(e.cli6)) == 0 {
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
	e.mustKnock(svcPort)
	e.waitRules(3 * time.Second)
	if err := e.d.Kill(); err != nil {
		t.Fatal(err)
	}
	if len(e.doorRules()) == 0 {
		t.Fatal("the killed run left no door: the test shows nothing")
	}
	if err := os.WriteFile(filepath.Join(e.d.Dir(), "replay"), []byte("not a replay store, not a 0.81 archive"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := e.srv.Command(t.Context(), filepath.Join(e.bin, "doormand"), "-D", "-f", e.d.ConfigPath()).CombinedOutput()
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
	e.mustKnock(svcPort)
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
			t.Parallel()
			e := newE2E(t, c.backend, c.ruleset, "")
			e.mustKnock(svcPort)
			e.waitRules(3 * time.Second)
			conn := e.dial(svcPort)
			if conn == nil {
				t.Fatal("door did not open")
			}
			conn.Close()
			e.waitEvent(dt.Closed("connection-ended"), 3*time.Second, "closed after the short connection")
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
// a modern guest bob (ports 2222 and 22 from the client's subnets) beside
// the classic alice, and the client's key and .knockcf with the doorman's
// server record.
type modernE2E struct {
	*e2e
	server, client protocol.PrivateKey
	knockcf        string
	race           netip.Addr // a second address of the client: an attacker on its network
}

func newModernE2E(t *testing.T, backend, ruleset, extraCfg string) *modernE2E {
	keys := t.TempDir()
	m := &modernE2E{server: newKey(t), client: newKey(t)}
	if err := config.WritePrivateKey(filepath.Join(keys, "doormand.key"), &m.server); err != nil {
		t.Fatal(err)
	}
	if err := config.WritePrivateKey(filepath.Join(keys, "knock.key"), &m.client); err != nil {
		t.Fatal(err)
	}
	// bob's entries: the whole client subnet, which the attacker's
	// address is inside.
	m.e2e = newE2EWith(t, backend, ruleset, extraCfg+"private-key "+filepath.Join(keys, "doormand.key")+"\n",
		"bob pubkey."+m.client.Public().String()+" 2222 22 198.18.0.0/15 2001:db8::/32\n")
	m.knockcf = filepath.Join(keys, "knockcf")
	if err := os.WriteFile(m.knockcf, fmt.Appendf(nil, "server %s %s\nprivate-key %s\n", m.srv4, m.server.Public(),
		filepath.Join(keys, "knock.key")), 0o600); err != nil {
		t.Fatal(err)
	}
	m.race = m.cliNet4.Addr().Next().Next().Next()
	m.sh(m.cli, fmt.Sprintf("ip addr add %s/%d dev %s", m.race, m.cliNet4.Bits(), m.cliIf))
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
	if out, code := m.knock(append([]string{"-f", m.knockcf}, args...)...); code != 0 {
		m.t.Fatalf("knock %v: exit %d\n%s", args, code, out)
	}
}

// modernPayload is what knock --dry-run makes for port: a modern knock
// stating the client's address, made now.
func (m *modernE2E) modernPayload(port int) []byte {
	m.t.Helper()
	out, err := m.cli.Command(m.t.Context(), filepath.Join(m.bin, "knock"), "-f", m.knockcf, "--dry-run",
		m.srv4.String(), fmt.Sprint(port)).Output()
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

// sendFrom sends payload from the client's address src.
func (e *e2e) sendFrom(src netip.Addr, payload []byte) {
	e.t.Helper()
	err := e.cli.Do(func() error {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(e.srv4, dt.KnockPort)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// dialFromPort is dial from the client's TCP source port sport; nil if the
// connection does not get through.
func (e *e2e) dialFromPort(sport, port int) net.Conn {
	var c net.Conn
	e.cli.Do(func() error {
		d := net.Dialer{Timeout: time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(e.cli4, uint16(sport)))}
		var err error
		if c, err = d.Dial("tcp", netip.AddrPortFrom(e.srv4, uint16(port)).String()); err != nil {
			c = nil
			return nil
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "hello") {
			c.Close()
			c = nil
		}
		return nil
	})
	return c
}

// modernAccepted matches accepted modern knocks.
var modernAccepted = dt.Accepted().And(func(ev dt.Event) bool { return ev.Protocol == "modern" })

// counter asks doormand for its counters (SIGUSR1) and returns name's.
func (e *e2e) counter(name string) uint64 {
	e.t.Helper()
	ev, err := e.d.Counters(3 * time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	return ev.Counters[name]
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
	armed := dt.DoorState(dt.StateArmed)

	// The knock binary's modern knock: one connection.
	m.knockModern(m.srv4.String(), fmt.Sprint(svcPort))
	m.waitEvent(armed, 3*time.Second, "door armed for a modern knock")
	conn := m.dial(svcPort)
	if conn == nil {
		t.Fatal("door did not open after a modern knock")
	}
	if c2 := m.dial(svcPort); c2 != nil {
		c2.Close()
		t.Fatal("a second connection got in (CLASSIC-6.2)")
	}
	conn.Close()
	if ev, ok := m.d.Last(modernAccepted); !ok || ev.Group != "bob" || ev.Source != "stated" || ev.Src != m.cli4 {
		t.Fatalf("accepted knock reported as %+v", ev)
	}

	// Replayed: stale.
	p := m.modernPayload(svcPort)
	m.send(p)
	m.waitEvents(modernAccepted, 2, 3*time.Second, "second modern knock accepted")
	m.send(p)
	m.waitEvent(dt.Rejected("stale"), 3*time.Second, "replay refused as stale")
	m.waitEvents(armed, 2, 3*time.Second, "door armed for the second knock")
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
	m.sendFrom(m.race, raced)
	m.waitEvent(dt.Rejected("source-mismatch"), 3*time.Second, "raced knock refused")
	m.sendFrom(m.cli4, raced)
	m.waitEvents(modernAccepted, 3, 3*time.Second, "genuine knock accepted after the race")
	m.waitEvents(armed, 3, 3*time.Second, "door armed after the race")
	if conn := m.dial(svcPort); conn == nil {
		t.Fatal("the client did not get in after the raced knock")
	} else {
		conn.Close()
	}

	// For another doorman: dropped at mac1, counted, no door.
	other := newKey(t)
	m.send(m.seal(other.Public(), protocol.Request{Port: svcPort, Source: m.cli4}))
	deadline := time.Now().Add(3 * time.Second)
	for m.counter("bad-mac1") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the knock for another doorman was not counted as bad-mac1")
		}
	}

	// A clock 93 s ahead: refused, and the event says by how much.
	m.send(m.seal(m.server.Public(), protocol.Request{Time: uint64(time.Now().Add(93 * time.Second).UnixNano()),
		Port: svcPort, Source: m.cli4}))
	m.waitEvent(dt.Rejected("clock-skew"), 3*time.Second, "skewed knock refused")
	if ev, _ := m.d.Last(dt.Rejected("clock-skew")); ev.SkewMS < 92000 || ev.SkewMS > 94000 {
		t.Fatalf("skew reported as %v ms, want about 93000", ev.SkewMS)
	}
	if c := m.dial(svcPort); c != nil {
		c.Close()
		t.Fatal("port open after the refused knocks")
	}

	// Stale after a restart and after kill -9 (MODERN-12.17/2).
	p2 := m.modernPayload(svcPort)
	m.send(p2)
	m.waitEvents(modernAccepted, 4, 3*time.Second, "knock before the kill")
	if err := m.d.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := m.d.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	stale := m.d.Count(dt.Rejected("stale"))
	m.send(p2)
	m.send(p)
	m.waitEvents(dt.Rejected("stale"), stale+2, 3*time.Second, "stale after kill -9")
	if err := m.d.Stop(); err != nil {
		t.Fatalf("doormand exit after SIGTERM: %v", err)
	}
	if err := m.d.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	m.send(p2)
	m.waitEvents(dt.Rejected("stale"), stale+3, 3*time.Second, "stale after a restart")

	// classic off, by a reload: classic knocks are refused, modern ones
	// still open doors.
	cf := m.d.ConfigPath()
	b, err := os.ReadFile(cf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cf, append(b, "classic off\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if ev, err := m.d.Reload(3 * time.Second); err != nil || !ev.OK {
		t.Fatalf("reload: %+v %v", ev, err)
	}
	m.mustKnock(svcPort)
	m.waitEvent(dt.Rejected("classic-disabled"), 3*time.Second, "classic knock refused")
	if c := m.dial(svcPort); c != nil {
		c.Close()
		t.Fatal("a classic knock opened a door with classic off")
	}
	n := m.d.Count(armed)
	m.knockModern(m.srv4.String(), fmt.Sprint(svcPort))
	m.waitEvents(armed, n+1, 3*time.Second, "door armed for a modern knock with classic off")
	if conn := m.dial(svcPort); conn == nil {
		t.Fatal("no door for a modern knock with classic off")
	} else {
		conn.Close()
	}

	// knock --wait, with which the README has a user check the setup: it
	// leaves a fresh door for the user's connection.
	n = m.d.Count(armed)
	if out, code := m.knock("-f", m.knockcf, "--wait=2s", m.srv4.String(), fmt.Sprint(svcPort)); code != 0 {
		t.Fatalf("knock --wait: exit %d\n%s", code, out)
	}
	m.waitEvents(armed, n+2, 3*time.Second, "the fresh door knock --wait leaves")
	if conn := dt.Dial(m.cli, netip.AddrPortFrom(m.srv4, svcPort), 3*time.Second, 2*time.Second); conn == nil {
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
			t.Parallel()
			m := newModernE2E(t, c.backend, c.ruleset, "waitfor 4\n")
			const sport = 40123
			m.send(m.seal(m.server.Public(), protocol.Request{Port: svcPort, Source: m.cli4, SourcePort: sport}))
			m.waitEvent(modernAccepted.And(func(ev dt.Event) bool { return ev.SrcPort == sport }),
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
			m.waitNoRules(6 * time.Second)
		})
	}
}
