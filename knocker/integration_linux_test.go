package knocker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
	"github.com/doorman-project/doorman/protocol"
)

// Topology of the integration tests, an internal/netsim run per test:
//
//	<run>-cli                              <run>-srv
//	  eth0 198.18.1.1/24     <---------->    eth0 198.18.1.2/24
//	       2001:db8:0:1::1/64                     2001:db8:0:1::2/64
//
// The server namespace has a UDP "doorman" that records knocks on the knock
// port and a TCP listener on the door port. Neither namespace has a default
// route, so nothing can leave them.
const (
	itKnockPort = 1001
	itDoorPort  = 2222
	itShutPort  = 2223
	itSecret    = "s3cretKnock"
	itGroup     = "alice"
)

func TestMain(m *testing.M) {
	code := m.Run()
	doormandtest.RemoveBuilt()
	os.Exit(code)
}

type testNet struct {
	cli, srv     *netsim.Host
	cliV4, srvV4 netip.Addr
	cliV6, srvV6 netip.Addr
}

// newTestNet builds the topology above, or skips when this process may not
// create namespaces. Everything is removed at cleanup.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	net := netsim.ForTest(t, "dmkn")
	n := &testNet{cli: net.AddHostForTest(t, "cli"), srv: net.AddHostForTest(t, "srv")}
	l, err := net.Link(n.cli, n.srv, netsim.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.cliV4, n.cliV6, n.srvV4, n.srvV6 = l.A.Addr4, l.A.Addr6, l.B.Addr4, l.B.Addr6
	return n
}

type datagram struct {
	payload []byte
	src     netip.AddrPort
}

// startServer opens the knock receiver and the door listener in the server
// namespace. Received knocks arrive on the returned channel.
func (n *testNet) startServer(t *testing.T) <-chan datagram {
	var udp *net.UDPConn
	var tcp net.Listener
	err := n.srv.Do(func() error {
		var err error
		if udp, err = net.ListenUDP("udp", &net.UDPAddr{Port: itKnockPort}); err != nil {
			return err
		}
		tcp, err = net.Listen("tcp", fmt.Sprintf(":%d", itDoorPort))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close(); tcp.Close() })
	out := make(chan datagram, 64)
	go func() {
		defer close(out)
		for {
			buf := make([]byte, 2048)
			k, src, err := udp.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			out <- datagram{buf[:k], src}
		}
	}()
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return out
}

func receive(t *testing.T, ch <-chan datagram) datagram {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no knock arrived within 5 s")
	}
	return datagram{}
}

var itPayloadRE = regexp.MustCompile(`^[1-9][0-9]{0,4} ` + itGroup + ` [0-9]{10} [0-9a-f]{32}$`)

// checkKnock checks one received knock against CLASSIC-2.1/1, CLASSIC-2.2/1,
// CLASSIC-2.5 and CLASSIC-3.1, and returns its tag.
func checkKnock(t *testing.T, d datagram, wantSrc netip.Addr) uint32 {
	t.Helper()
	if !itPayloadRE.Match(d.payload) {
		t.Fatalf("payload %q is not the classic form", d.payload)
	}
	var k protocol.Knock
	if err := protocol.ParseKnock(d.payload, &k); err != nil {
		t.Fatalf("payload %q: %v", d.payload, err)
	}
	if !k.VerifyMAC(protocol.Secret(itSecret)) || k.Port != itDoorPort {
		t.Fatalf("payload %q does not verify for port %d", d.payload, itDoorPort)
	}
	if d.src.Addr().Unmap() != wantSrc {
		t.Fatalf("knock from %s, want %s", d.src, wantSrc)
	}
	return k.Tag
}

// TestIntegrationKnock sends 1,000 knocks with the library over IPv4 and
// some over IPv6 and checks every one on the server side: exactly the
// payload reported (CLASSIC-11.1), the canonical form, a verifying MAC and a
// tag never seen before (CLASSIC-3.3/1).
func TestIntegrationKnock(t *testing.T) {
	n := newTestNet(t)
	got := n.startServer(t)
	const knocks = 1000

	o := Options{Service: "2222", Group: itGroup, Secret: protocol.Secret(itSecret), KnockPort: itKnockPort}
	tags := make(map[uint32]int, knocks)
	deadline := time.Now().Add(2 * time.Minute)
	send := func(host string, network string, src netip.Addr, count int) {
		o.Host, o.Network = host, network
		var results []Result
		for i := 0; i < count; i++ {
			var res Result
			if err := n.cli.Do(func() (err error) {
				res, err = Send(context.Background(), o)
				return err
			}); err != nil {
				t.Fatalf("knock %d to %s: %v", i, host, err)
			}
			results = append(results, res)
			d := receive(t, got)
			if !bytes.Equal(d.payload, res.Payload) {
				t.Fatalf("knock %d: received %q, sent %q", i, d.payload, res.Payload)
			}
			tag := checkKnock(t, d, src)
			if prev, dup := tags[tag]; dup {
				t.Fatalf("tag %d of knock %d repeats knock %d", tag, len(tags), prev)
			}
			tags[tag] = len(tags)
			if time.Now().After(deadline) {
				t.Fatalf("only %d knocks in 2 minutes", len(tags))
			}
		}
		if res := results[0]; res.Dest.Port() != itKnockPort || res.Dest.Addr().String() != strings.Trim(host, "[]") {
			t.Errorf("Result.Dest = %s", res.Dest)
		}
	}
	send(n.srvV4.String(), "", n.cliV4, knocks)
	send(n.srvV6.String(), "udp6", n.cliV6, 20) // CLASSIC-2.7
	send("["+n.srvV6.String()+"]", "", n.cliV6, 5)
	if len(tags) != knocks+25 {
		t.Fatalf("%d distinct tags", len(tags))
	}
	select {
	case d := <-got:
		t.Fatalf("an extra datagram %q arrived", d.payload)
	case <-time.After(100 * time.Millisecond):
	}

	// No route: the datagram cannot leave, and the error says why.
	for _, host := range []string{"198.19.255.1", "2001:db8:ffff::1"} {
		o.Host, o.Network = host, ""
		err := n.cli.Do(func() error { _, err := Send(context.Background(), o); return err })
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("knock to unrouted %s: err = %v, want ErrUnreachable", host, err)
		}
	}
}

// TestIntegrationKnockCommand runs the built knock binary inside the client
// namespace: a plain knock over IPv4 and IPv6, --wait against the open door
// port (two knocks), and --wait against a closed port, which must fail
// within the wait after one knock.
func TestIntegrationKnockCommand(t *testing.T) {
	n := newTestNet(t)
	got := n.startServer(t)
	bin := filepath.Join(doormandtest.Binaries(t), "knock")
	home := t.TempDir() // no ~/.knockcf from the machine

	knock := func(args ...string) (string, string, int, time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := n.cli.Command(ctx, bin, append([]string{"-g", itGroup, "-s", itSecret, "-p", fmt.Sprint(itKnockPort)}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("knock %v: %v", args, err)
		}
		return stdout.String(), stderr.String(), code, took
	}

	if out, errs, code, _ := knock(n.srvV4.String(), "2222"); code != 0 || out != "" {
		t.Fatalf("knock: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	checkKnock(t, receive(t, got), n.cliV4)

	if _, errs, code, _ := knock("-6", n.srvV6.String(), "2222"); code != 0 {
		t.Fatalf("knock -6: exit %d, stderr %q", code, errs)
	}
	checkKnock(t, receive(t, got), n.cliV6)

	// --wait knocks, probes, and knocks again for the user (CLASSIC-11.6).
	out, errs, code, _ := knock("--wait=5s", n.srvV4.String(), "2222")
	if code != 0 || !regexp.MustCompile(`^open after [0-9]+ ms\n$`).MatchString(out) {
		t.Fatalf("--wait on the open port: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	first := checkKnock(t, receive(t, got), n.cliV4)
	if second := checkKnock(t, receive(t, got), n.cliV4); second == first {
		t.Error("--wait sent the same tag twice")
	}

	out, errs, code, _ = knock("--wait=5s", n.srvV6.String(), "2222")
	if code != 0 || !strings.HasPrefix(out, "open after ") {
		t.Fatalf("--wait over IPv6: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	checkKnock(t, receive(t, got), n.cliV6)
	checkKnock(t, receive(t, got), n.cliV6)

	const wait = 1500 * time.Millisecond
	out, errs, code, took := knock("--wait="+wait.String(), n.srvV4.String(), fmt.Sprint(itShutPort))
	if code != 1 || out != "" || !strings.Contains(errs, "no door opened (check group, secret, port, your address)") {
		t.Fatalf("--wait on a closed port: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if took < wait || took > wait+10*time.Second {
		t.Errorf("--wait=%s on a closed port took %s", wait, took)
	}
	d := receive(t, got)
	if !itPayloadRE.Match(d.payload) || !strings.HasPrefix(string(d.payload), fmt.Sprint(itShutPort)+" ") {
		t.Errorf("knock for the closed port: %q", d.payload)
	}

	if _, errs, code, _ := knock("198.19.255.1", "2222"); code != 1 || !strings.Contains(errs, "network unreachable") {
		t.Errorf("unrouted host: exit %d, stderr %q", code, errs)
	}
}
