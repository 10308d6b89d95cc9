//go:build linux

package capture

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/internal/netsim"
)

// testNet is two simulated hosts from internal/netsim, a (the knocker) and
// b (the doorman), joined by a veth link; the run's namespaces are
// "dmcap-<random>-a" and "-b":
//
//	a: eth0 198.18.1.1/24 2001:db8:0:1::1/64 <--veth--> eth0 .2, ::2 :b
type testNet struct {
	sim  *netsim.Net
	a, b *netsim.Host
	// link.A is a's end, link.B b's end. TestIntegrationLinkFlaps
	// replaces it when it re-creates the link (same names and addresses).
	link *netsim.Link
	// The ends' addresses, and the knock port on b's.
	a4, a6, b4, b6 netip.Addr
	knock4, knock6 netip.AddrPort
}

// opTimeout bounds every wait for a packet or a kernel change.
const opTimeout = 10 * time.Second

func newTestNet(t testing.TB) *testNet {
	t.Helper()
	sim := netsim.ForTest(t, "dmcap")
	n := &testNet{sim: sim, a: sim.AddHostForTest(t, "a"), b: sim.AddHostForTest(t, "b")}
	var err error
	n.link, err = sim.Link(n.a, n.b, netsim.LinkOptions{})
	must(t, "link a-b", err)
	n.a4, n.a6 = n.link.A.Addr4, n.link.A.Addr6
	n.b4, n.b6 = n.link.B.Addr4, n.link.B.Addr6
	n.knock4, n.knock6 = netip.AddrPortFrom(n.b4, testPort), netip.AddrPortFrom(n.b6, testPort)
	return n
}

// ifB is the name of b's interface on the link.
func (n *testNet) ifB() string { return n.link.B.Name }

// onLink returns address .host of the link's IPv4 /24.
func (n *testNet) onLink(host byte) netip.Addr {
	b := n.link.B.Prefix4.Masked().Addr().As4()
	b[3] = host
	return netip.AddrFrom4(b)
}

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// open opens a Conn inside h and closes it when the test ends.
func open(t testing.TB, h *netsim.Host, cfg Config) *Conn {
	t.Helper()
	c, err := openErr(t, h, cfg)
	must(t, "Open", err)
	return c
}

func openErr(t testing.TB, h *netsim.Host, cfg Config) (*Conn, error) {
	t.Helper()
	var c *Conn
	err := h.Do(func() (err error) {
		c, err = Open(context.Background(), cfg)
		return err
	})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// sendUDP sends one datagram from h and returns the source port used.
func sendUDP(t testing.TB, h *netsim.Host, dst netip.AddrPort, payload string) uint16 {
	t.Helper()
	var port uint16
	must(t, "send udp", h.Do(func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		port = uint16(c.LocalAddr().(*net.UDPAddr).Port)
		_, err = c.Write([]byte(payload))
		return err
	}))
	return port
}

// dialTCP starts a TCP connection from h (the port is closed, so one SYN
// goes out and a RST comes back).
func dialTCP(t testing.TB, h *netsim.Host, dst netip.AddrPort) {
	t.Helper()
	must(t, "dial tcp", h.Do(func() error {
		d := net.Dialer{Timeout: 2 * time.Second}
		if c, err := d.Dial("tcp", dst.String()); err == nil {
			c.Close()
		}
		return nil
	}))
}

// inject sends a raw Ethernet frame out of a's end of the link.
func (n *testNet) inject(t testing.TB, frame []byte) {
	t.Helper()
	must(t, "inject frame", n.link.A.InjectFrame(frame))
}

// frameToB wraps an IP packet in an Ethernet header from a to b.
func (n *testNet) frameToB(pkt []byte) []byte {
	et := uint16(etherTypeIPv4)
	if pkt[0]>>4 == 6 {
		et = etherTypeIPv6
	}
	return ether([6]byte(n.link.B.MAC), [6]byte(n.link.A.MAC), -1, et, pkt)
}

// result is one Read outcome with the payload copied.
type result struct {
	p       Packet
	payload string
	err     error
}

// reader reads c in a goroutine until a fatal error and hands every
// outcome (sentinels included) to the returned channel.
func reader(t testing.TB, c *Conn) <-chan result {
	ch := make(chan result, 64)
	go func() {
		defer close(ch)
		for {
			var p Packet
			err := c.Read(&p)
			r := result{p: p, payload: string(p.Payload), err: err}
			r.p.Payload = nil
			ch <- r
			if err != nil && !isSentinel(err) {
				return
			}
		}
	}()
	return ch
}

func isSentinel(err error) bool {
	for _, s := range []error{ErrTruncated, ErrIPOptions, ErrFragment, ErrChecksum, ErrMartian, ErrNotLocal, ErrNotCandidate} {
		if err == s {
			return true
		}
	}
	return false
}

// next waits for the next Read outcome.
func next(t testing.TB, ch <-chan result) result {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("reader ended")
		}
		return r
	case <-time.After(opTimeout):
		t.Fatal("no packet within the time limit")
	}
	return result{}
}

// expectKnock waits for the next outcome and checks it is a knock with
// the given payload.
func expectKnock(t testing.TB, ch <-chan result, payload string) Packet {
	t.Helper()
	r := next(t, ch)
	if r.err != nil {
		t.Fatalf("Read: %v, want the knock %q", r.err, payload)
	}
	if r.payload != payload {
		t.Fatalf("Read delivered %+v payload %q, want payload %q", r.p, r.payload, payload)
	}
	return r.p
}

func expectErr(t testing.TB, ch <-chan result, want error) {
	t.Helper()
	if r := next(t, ch); r.err != want {
		t.Fatalf("Read: %+v %q err %v, want %v", r.p, r.payload, r.err, want)
	}
}

// knockTo returns a unique payload for one knock, shaped like a classic
// knock so that the kernel prefilter passes it: tag (up to 10 characters)
// stands in the tag field.
func knockTo(tag string) string {
	return "2222 alice " + strings.Repeat("0", max(0, 10-len(tag))) + tag + " " + strings.Repeat("0", 32)
}
