//go:build linux

package firewall

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorman-project/doorman/internal/netsim"
)

// Test topology, an internal/netsim run per test, removed at cleanup:
//
//	host c (client)                          host s (server)
//	+----------------------+                 +------------------------------+
//	| eth0 198.18.1.1/24   |---- veth -------| eth0 198.18.1.2/24           |
//	|   2001:db8:0:1::1/64 |                 |   2001:db8:0:1::2/64         |
//	+----------------------+                 | firewall under test,         |
//	                                         | TCP echo server on :testPort |
//	                                         +------------------------------+
const (
	testPort   = 2222
	dialOK     = 3 * time.Second        // a door that is open answers well within this
	dialRefuse = 400 * time.Millisecond // a closed door: the SYN is dropped, the dial times out
)

type testNet struct {
	server, client *netsim.Host
	serverIf       string // the server's interface
	srv4, cli4     netip.Addr
	srv6, cli6     netip.Addr
	nextPort       int
}

// requireRoot skips unless the test can create network namespaces and
// run the firewall tools.
func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test skipped in -short mode")
	}
	for _, bin := range []string{"ip", "nft", "iptables", "ip6tables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("integration test needs %s: %v", bin, err)
		}
	}
}

// newTestNet builds the topology above. Every test gets namespaces of its
// own, so the tests run in parallel: most of their time is spent waiting
// for dials that must time out.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	requireRoot(t)
	t.Parallel()
	return buildTestNet(t)
}

// newSerialTestNet is newTestNet for a test that must not share the
// machine with the others (it measures).
func newSerialTestNet(t *testing.T) *testNet {
	t.Helper()
	requireRoot(t)
	return buildTestNet(t)
}

func buildTestNet(t *testing.T) *testNet {
	t.Helper()
	net := netsim.ForTest(t, "dmfw")
	n := &testNet{client: net.AddHostForTest(t, "c"), server: net.AddHostForTest(t, "s")}
	l, err := net.Link(n.client, n.server, netsim.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.serverIf = l.B.Name
	n.cli4, n.cli6, n.srv4, n.srv6 = l.A.Addr4, l.A.Addr6, l.B.Addr4, l.B.Addr6
	p, _ := rand.Int(rand.Reader, big.NewInt(20000))
	n.nextPort = 30000 + int(p.Int64())
	n.listen(t)
	return n
}

// sh runs a command in the server namespace (for firewall setup and checks).
func (n *testNet) sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := n.server.Command(t.Context(), args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nftFile loads an nft script in the server namespace.
func (n *testNet) nftFile(t *testing.T, script string) {
	t.Helper()
	cmd := n.server.Command(t.Context(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s\n%s", err, out, script)
	}
}

// listen starts a TCP echo server on testPort (IPv4 and IPv6) in the server
// namespace.
func (n *testNet) listen(t *testing.T) {
	t.Helper()
	var ln net.Listener
	if err := n.server.Do(func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", testPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

// port returns a client source port not used before in this test, so that
// no TIME_WAIT state of an earlier connection gets in the way.
func (n *testNet) port() uint16 {
	n.nextPort++
	return uint16(n.nextPort)
}

// dial connects from the client namespace, from src:sport, to dst:testPort
// and checks that bytes echo back. It returns the open connection.
func (n *testNet) dial(src netip.Addr, sport uint16, dst netip.Addr, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.client.Do(func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, sport))}
		var err error
		c, err = d.Dial("tcp", netip.AddrPortFrom(dst, testPort).String())
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := echo(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func echo(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(dialOK))
	if _, err := c.Write([]byte("knock")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	return nil
}

// mustConnect asserts that a connection from src:sport gets in and returns it
// (closed at the end of the test).
func (n *testNet) mustConnect(t *testing.T, src netip.Addr, sport uint16, dst netip.Addr, why string) net.Conn {
	t.Helper()
	c, err := n.dial(src, sport, dst, dialOK)
	if err != nil {
		t.Fatalf("%s: connect from port %d failed: %v", why, sport, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mustNotConnect asserts that a connection from src:sport does not get in.
func (n *testNet) mustNotConnect(t *testing.T, src netip.Addr, sport uint16, dst netip.Addr, why string) {
	t.Helper()
	c, err := n.dial(src, sport, dst, dialRefuse)
	if err == nil {
		c.Close()
		t.Fatalf("%s: connect from port %d got in", why, sport)
	}
}

// Server-side firewalls that drop all input except what the host's admin
// allows. markLine adds the accept line from the package documentation.
func (n *testNet) dropAllNFT(t *testing.T, markLine bool) {
	t.Helper()
	extra := ""
	if markLine {
		extra = fmt.Sprintf("meta mark & %#08x == %#08x accept", DefaultMark, DefaultMark)
	}
	n.nftFile(t, `table inet filter {
	chain input {
		type filter hook input priority 0; policy drop;
		ct state established,related accept
		iif lo accept
		meta l4proto ipv6-icmp accept
		`+extra+`
	}
}
`)
}

func (n *testNet) dropAllIPT(t *testing.T, markLine bool) {
	t.Helper()
	for _, ipt := range []string{"iptables", "ip6tables"} {
		n.sh(t, ipt, "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
		n.sh(t, ipt, "-A", "INPUT", "-i", "lo", "-j", "ACCEPT")
		if ipt == "ip6tables" {
			n.sh(t, ipt, "-A", "INPUT", "-p", "ipv6-icmp", "-j", "ACCEPT")
		}
		if markLine {
			m := fmt.Sprintf("%#08x/%#08x", DefaultMark, DefaultMark)
			n.sh(t, ipt, "-I", "INPUT", "-m", "mark", "--mark", m, "-j", "ACCEPT")
		}
		n.sh(t, ipt, "-P", "INPUT", "DROP")
	}
}

var (
	_ backend = (*NFTables)(nil)
	_ backend = (*IPTables)(nil)
	_ backend = (*Script)(nil)
	_ backend = (*Fake)(nil)
)

// do runs one backend call in the server namespace.
func (n *testNet) do(fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.server.Do(func() error { return fn(ctx) })
}

func (n *testNet) must(t *testing.T, what string, fn func(context.Context) error) {
	t.Helper()
	if err := n.do(fn); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// reports collects what a started backend reports.
type reports struct {
	claims chan Claim
	mu     sync.Mutex
	faults []Fault
}

func newReports() *reports { return &reports{claims: make(chan Claim, 1024)} }

func (r *reports) notify() Notify {
	return Notify{
		Claim: func(c Claim) { r.claims <- c },
		Fault: func(f Fault) { r.mu.Lock(); r.faults = append(r.faults, f); r.mu.Unlock() },
	}
}

// nextClaim waits for the next claim report.
func (r *reports) nextClaim(t *testing.T, within time.Duration) Claim {
	t.Helper()
	select {
	case c := <-r.claims:
		return c
	case <-time.After(within):
		t.Fatalf("no claim reported within %v", within)
		return Claim{}
	}
}

// noClaim asserts that no (further) claim is reported for a while.
func (r *reports) noClaim(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case c := <-r.claims:
		t.Fatalf("unexpected claim: %+v", c)
	case <-time.After(within):
	}
}

func (r *reports) repaired() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.faults {
		if f.Repaired {
			return true
		}
	}
	return false
}

// waitRepaired fails the test unless the backend reports a repair within
// the given time; what names the repair in the failure.
func (r *reports) waitRepaired(t *testing.T, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !r.repaired() {
		if time.Now().After(deadline) {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("%s not restored within %v; faults: %+v", what, within, r.faults)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start starts b in the server namespace and returns its reports.
func (n *testNet) start(t *testing.T, b backend) *reports {
	t.Helper()
	r := newReports()
	n.must(t, "Start", func(ctx context.Context) error { return b.Start(ctx, r.notify()) })
	t.Cleanup(func() { _ = n.do(b.Close) })
	return r
}

// apply applies doors in the server namespace and fails on any error.
func (n *testNet) apply(t *testing.T, b backend, doors ...Door) {
	t.Helper()
	var errs []error
	n.must(t, "Apply", func(ctx context.Context) error {
		errs = b.Apply(ctx, doors)
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// door returns door id from src to dst:testPort in state s, armed for waitFor.
func door(id uint64, src, dst netip.Addr, s DoorState, sport uint16, waitFor time.Duration) Door {
	return Door{ID: id, Src: src, Dst: dst, Port: testPort, SrcPort: sport, State: s, Expires: time.Now().Add(waitFor)}
}

// dialMany starts connections from ports at the same moment and returns the
// ports that got in (their connections are closed at the end of the test).
func (n *testNet) dialMany(t *testing.T, src, dst netip.Addr, ports []uint16) []uint16 {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var in []uint16
	start := make(chan struct{})
	for _, p := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := n.dial(src, p, dst, dialRefuse+dialOK/2)
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			mu.Lock()
			in = append(in, p)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return in
}

// addrs returns the client and server address of the family.
func (n *testNet) addrs(v6 bool) (src, dst netip.Addr) {
	if v6 {
		return n.cli6, n.srv6
	}
	return n.cli4, n.srv4
}

// doorScenario is the life of doors, common to all backends: closed
// before; armed, of two simultaneous connections exactly one gets in and
// is the one reported as the claim; a third is refused; claimed and narrow,
// only the claimed connection passes; closed, nothing passes; an armed door
// nobody claims is forgotten by the kernel by its expiry; Close leaves
// nothing. openAfterClose: the port is open once the backend is gone (the
// backend closed it itself, NFTConfig.Protect).
func doorScenario(t *testing.T, n *testNet, b backend, v6, openAfterClose bool) {
	t.Helper()
	src, dst := n.addrs(v6)
	r := n.start(t, b)
	n.mustNotConnect(t, src, n.port(), dst, "before any door")

	d := door(1, src, dst, DoorArmed, 0, 10*time.Second)
	d.Iface = n.serverIf
	n.apply(t, b, d)
	in := n.dialMany(t, src, dst, []uint16{n.port(), n.port()})
	if len(in) != 1 {
		t.Fatalf("armed door let %d of two simultaneous connections in, want exactly 1 (CLASSIC-6.2)", len(in))
	}
	c := r.nextClaim(t, 2*time.Second)
	if c.SrcPort != in[0] || c.Src != src || c.Dst != dst || c.Port != testPort {
		t.Fatalf("claim %+v, but the connection that got in came from port %d", c, in[0])
	}
	n.mustNotConnect(t, src, n.port(), dst, "second connection through a claimed door")
	d.State, d.SrcPort = DoorClaimed, c.SrcPort
	n.apply(t, b, d)
	n.mustNotConnect(t, src, n.port(), dst, "other source port through a claimed door")
	d.State = DoorNarrow
	n.apply(t, b, d)
	n.mustNotConnect(t, src, n.port(), dst, "other source port through a narrow door")
	d.State = DoorClosed
	n.apply(t, b, d)
	n.apply(t, b, d) // closing twice is fine
	n.mustNotConnect(t, src, n.port(), dst, "after the door closed")

	// Nobody comes: the kernel forgets the door by itself.
	e := door(2, src, dst, DoorArmed, 0, 700*time.Millisecond)
	n.apply(t, b, e)
	time.Sleep(900 * time.Millisecond)
	n.mustNotConnect(t, src, n.port(), dst, "after the armed door expired, without the daemon (CLASSIC-6.3, CLASSIC-6.3/2)")
	r.noClaim(t, 10*time.Millisecond)
	e.State = DoorClosed
	n.apply(t, b, e)

	// A door left open at Close must go too.
	n.apply(t, b, door(3, src, dst, DoorArmed, 0, 10*time.Second))
	n.must(t, "Close", b.Close)
	n.must(t, "Close again", b.Close)
	if l := n.leftovers(t, true); l != "" {
		t.Fatalf("left behind after Close:\n%s", l)
	}
	if openAfterClose {
		n.mustConnect(t, src, n.port(), dst, "after Close the port is the host's again")
	} else {
		n.mustNotConnect(t, src, n.port(), dst, "after Close")
	}
}

// crashScenario: a backend arms doors and "dies" (no Close); a new
// instance's Start must remove them (CLASSIC-6.9).
func crashScenario(t *testing.T, n *testNet, newBackend func() backend, v6 bool) {
	t.Helper()
	src, dst := n.addrs(v6)
	dead := newBackend()
	n.must(t, "Start", func(ctx context.Context) error { return dead.Start(ctx, Notify{}) })
	n.apply(t, dead, door(1, src, dst, DoorArmed, 0, time.Minute), Door{ID: 2, Src: src, Dst: dst, Port: testPort + 1, SrcPort: 1234, State: DoorArmed, Expires: time.Now().Add(time.Minute)})
	if n.leftovers(t, false) == "" {
		t.Fatal("leftovers() sees no doors while they are in place: the check is blind")
	}
	// The dead instance's routines still run in this process; a real crash
	// has none. Stopping them without Close keeps its table in place.
	abandon(dead)
	next := newBackend()
	n.start(t, next)
	if l := n.leftovers(t, false); l != "" {
		t.Fatalf("doors left after restart:\n%s", l)
	}
	n.mustNotConnect(t, src, n.port(), dst, "after restart")
	n.must(t, "Close", next.Close)
	if l := n.leftovers(t, true); l != "" {
		t.Fatalf("left behind after restart and Close:\n%s", l)
	}
}

// leftovers returns the lines of the server's whole ruleset (nftables, which
// also shows iptables-nft rules) that mention a client address, i.e. doors
// of any backend, and with all=true also anything named doorman (our
// table, chain, comments, sets).
func (n *testNet) leftovers(t *testing.T, all bool) string {
	t.Helper()
	var hits []string
	for _, l := range strings.Split(n.sh(t, "nft", "list", "ruleset"), "\n") {
		low := strings.ToLower(l)
		if strings.Contains(l, n.cli4.String()) || strings.Contains(l, n.cli6.String()) ||
			(all && strings.Contains(low, "doorman")) {
			hits = append(hits, l)
		}
	}
	return strings.Join(hits, "\n")
}
