//go:build linux

package conformance

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Cases for CLASSIC-4.3 and CLASSIC-4.4: datagrams a doorman must not
// consider, whatever knock they carry.
func frameCases() []*Case {
	return []*Case{
		{ID: "4.3/ip-options", Requirement: "CLASSIC-4.3", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock in an IPv4 datagram with IP options (IHL 6) is not considered; the same path without options opens",
			Run: func(e *Env) error {
				return e.expectIgnored("CLASSIC-4.3", []badKnock{
					{"an IPv4 header with options (IHL 6)", e.rawKnock(rawIPv4{Options: []byte{1, 1, 1, 0}})},
				}, e.rawControl())
			}},
		{ID: "4.3/fragment-mf", Requirement: "CLASSIC-4.3", Level: "MUST", Target: TargetDaemon,
			Description: "a first fragment (MF set, offset 0) holding a whole valid knock is not considered (0.81 accepted it)",
			Run: func(e *Env) error {
				return e.expectIgnored("CLASSIC-4.3", []badKnock{
					{"a first fragment (MF set) holding the whole knock", e.rawKnock(rawIPv4{MF: true})},
				}, e.rawControl())
			}},
		{ID: "4.3/fragment-offset", Requirement: "CLASSIC-4.3", Level: "MUST", Target: TargetDaemon,
			Description: "a last fragment (offset 8 bytes) that looks like a valid knock is not considered",
			Run: func(e *Env) error {
				return e.expectIgnored("CLASSIC-4.3", []badKnock{
					{"a fragment at offset 8 that looks like a whole knock", e.rawKnock(rawIPv4{FragOffset: 1})},
				}, e.rawControl())
			}},
		{ID: "4.3/fragmented-knock", Requirement: "CLASSIC-4.3/3", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock split into two fragments that the kernel reassembles is not considered, over IPv4 and IPv6",
			Run: func(e *Env) error {
				return e.expectIgnored("CLASSIC-4.3/3", []badKnock{
					{"an IPv4 knock in two fragments", e.fragmentedKnock4()},
					{"an IPv6 knock in two fragments", e.l2Knock6(func(r rawIPv6) [][]byte { return r.fragments(24) })},
				}, e.rawControl())
			}},
		{ID: "4.3/ipv6-extension-headers", Requirement: "CLASSIC-4.3", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock behind an IPv6 destination options header, or in an atomic fragment, is not considered; the same path without them opens",
			Run: func(e *Env) error {
				return e.expectIgnored("CLASSIC-4.3", []badKnock{
					{"an IPv6 destination options header before UDP", e.l2Knock6(func(r rawIPv6) [][]byte { r.DestOpts = true; return [][]byte{r.bytes()} })},
					{"an IPv6 atomic fragment (fragment header, offset 0, M clear)", e.l2Knock6(func(r rawIPv6) [][]byte { return r.fragments(0) })},
				}, e.l2Control6())
			}},
		{ID: "4.3/bad-checksums", Requirement: "CLASSIC-4.3/2", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock with a wrong IPv4 header checksum, a wrong UDP checksum (IPv4, IPv6) or a UDP checksum of 0 over IPv6 is not considered",
			Run: func(e *Env) error {
				return e.expectIgnored("CLASSIC-4.3/2", []badKnock{
					{"a wrong IPv4 header checksum", e.l2Knock4(func(r rawIPv4) rawIPv4 { r.BadIPCsum = true; return r })},
					{"a wrong UDP checksum over IPv4", e.l2Knock4(func(r rawIPv4) rawIPv4 { r.UDPCsum = csumBad; return r })},
					{"a wrong UDP checksum over IPv6", e.l2Knock6(func(r rawIPv6) [][]byte { r.UDPCsum = csumBad; return [][]byte{r.bytes()} })},
					{"a UDP checksum of 0 over IPv6", e.l2Knock6(func(r rawIPv6) [][]byte { r.UDPCsum = csumZero; return [][]byte{r.bytes()} })},
				}, e.l2Control4(), e.l2Control6())
			}},
		{ID: "4.3/udp-checksum-zero", Requirement: "CLASSIC-4.3/2", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock over IPv4 with a UDP checksum of 0 (no checksum) opens the door",
			Run: func(e *Env) error {
				send := e.l2Knock4(func(r rawIPv4) rawIPv4 { r.UDPCsum = csumZero; return r })
				if err := send(knockFor(portA)); err != nil {
					return err
				}
				time.Sleep(settle)
				return e.expectOpen(e.Topo.Client, portA, "IPv4 knock without a UDP checksum")
			}},
		{ID: "4.4/wrong-destination-port", Requirement: "CLASSIC-4.4", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock sent to another UDP port than the knock port is not considered",
			Run: func(e *Env) error {
				return e.expectIgnored("CLASSIC-4.4", []badKnock{{fmt.Sprintf("UDP port %d instead of %d", knockPort+1, knockPort),
					func(k string) error {
						_, err := udpSend(e.Topo.Client, e.server(), knockPort+1, []byte(k))
						return err
					}}})
			}},
		{ID: "4.4/not-own-address", Requirement: "CLASSIC-4.4", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock addressed to a broadcast, multicast or loopback address, to the address of an interface the daemon does not watch, " +
				"or in an IPv6 header with an IPv4-mapped or -compatible address is not considered; the same path to the server's address opens",
			Run: runNotOwnAddress},
	}
}

// badKnock is a way of sending a knock that must not be considered.
type badKnock struct {
	what string
	send func(knock string) error
}

// control is a knock sent the way a case's bad knocks are, without their
// defect: it must open the door for the first client, which proves the
// hand-built path delivers good knocks.
type control struct {
	what  string
	send  func(knock string) error
	probe func() error
}

// expectIgnored sends each bad datagram with its own fresh knock for
// alice from the first client, each for its own port, then checks that
// none was considered: the same knock sent afterwards, normally, from the
// second client (another of alice's addresses) must open the door for it.
// A knock the daemon acted on comes back as a replay, so this sees every
// effect of considering it, also a door no probe can reach (a door for a
// broadcast address has no TCP peer). Each bad datagram has its own knock
// and digest, so one wrongly accepted cannot hide another, and its own
// port, so the checks run at once.
func (e *Env) expectIgnored(req string, bad []badKnock, controls ...control) error {
	if len(bad) > len(probePorts) {
		return setupErr(fmt.Errorf("%d datagrams to check, %d probe ports", len(bad), len(probePorts)))
	}
	knocks := make([]string, len(bad))
	for i, b := range bad {
		knocks[i] = knockFor(probePorts[i])
		if err := b.send(knocks[i]); err != nil {
			return setupErr(fmt.Errorf("sending %s: %w", b.what, err))
		}
	}
	for _, c := range controls {
		if err := c.send(knockFor(portA)); err != nil {
			return setupErr(fmt.Errorf("sending the control knock (%s): %w", c.what, err))
		}
	}
	time.Sleep(settle)
	for _, k := range knocks {
		if _, err := udpSend(e.Topo.Client2, e.server(), knockPort, []byte(k)); err != nil {
			return setupErr(err)
		}
	}
	time.Sleep(settle)
	considered := make([]bool, len(bad))
	controlErrs := make([]error, len(controls))
	var wg sync.WaitGroup
	for i := range bad {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialTCP(e.Topo.Client2, e.server(), probePorts[i], openTimeout)
			if err != nil {
				considered[i] = true
				return
			}
			c.Close()
		}()
	}
	for i, c := range controls {
		wg.Add(1)
		go func() { defer wg.Done(); controlErrs[i] = c.probe() }()
	}
	wg.Wait()
	for i, err := range controlErrs {
		if err != nil {
			return fmt.Errorf("control (%s, which should open): %w", controls[i].what, err)
		}
	}
	var names []string
	for i, b := range bad {
		if considered[i] {
			names = append(names, b.what)
		}
	}
	if len(names) > 0 {
		return mismatch(fmt.Sprintf("datagrams of these kinds not considered (%s): the same knock, re-sent normally from %s, opens the door",
			req, e.Topo.Client2.Addr),
			"the re-sent knock opened nothing, so the daemon had already used it, for: %s", strings.Join(names, "; "))
	}
	return nil
}

func randomPort() uint16 { return uint16(20000 + rand.IntN(30000)) }

// rawKnock sends a knock in an IPv4 datagram shaped by tmpl from the first
// client through its routing (IP_HDRINCL).
func (e *Env) rawKnock(tmpl rawIPv4) func(string) error {
	return func(k string) error {
		r := tmpl
		r.Src, r.Dst, r.SrcPort, r.DstPort, r.Payload = e.Topo.Client.Addr, e.server(), randomPort(), knockPort, []byte(k)
		return rawSend(e.Topo.Client, r.Dst, r.bytes())
	}
}

// rawControl is a plain IPv4 knock through the same raw path.
func (e *Env) rawControl() control {
	return control{what: "a plain IPv4 datagram through the same raw socket", send: e.rawKnock(rawIPv4{}),
		probe: func() error { return e.expectOpen(e.Topo.Client, portA, "control knock, raw path") }}
}

func (e *Env) fragmentedKnock4() func(string) error {
	return func(k string) error {
		r := rawIPv4{Src: e.Topo.Client.Addr, Dst: e.server(), SrcPort: randomPort(), DstPort: knockPort, Payload: []byte(k)}
		return rawSend(e.Topo.Client, r.Dst, r.fragments(24)...)
	}
}

// l2Knock4 sends an IPv4 knock built by shape straight onto the first
// client's link, to the server's link-layer address.
func (e *Env) l2Knock4(shape func(rawIPv4) rawIPv4) func(string) error {
	return e.l2Knock4To(e.server(), nil, shape)
}

// l2Knock4To is l2Knock4 to dst at link-layer address mac (nil: the
// server's).
func (e *Env) l2Knock4To(dst netip.Addr, mac net.HardwareAddr, shape func(rawIPv4) rawIPv4) func(string) error {
	return func(k string) error {
		r := rawIPv4{Src: e.Topo.Client.Addr, Dst: dst, SrcPort: randomPort(), DstPort: knockPort, Payload: []byte(k)}
		if shape != nil {
			r = shape(r)
		}
		return e.l2SendTo(mac, r.bytes())
	}
}

// l2Knock6 sends the IPv6 packets build makes of a knock from the first
// client to the server's IPv6 address, onto the link.
func (e *Env) l2Knock6(build func(rawIPv6) [][]byte) func(string) error {
	return e.l2Knock6From(e.Topo.Client.Addr6, e.Topo.Server.Addr6, nil, build)
}

func (e *Env) l2Knock6From(src, dst netip.Addr, mac net.HardwareAddr, build func(rawIPv6) [][]byte) func(string) error {
	return func(k string) error {
		r := rawIPv6{Src: src, Dst: dst, SrcPort: randomPort(), DstPort: knockPort, Payload: []byte(k)}
		pkts := [][]byte{r.bytes()}
		if build != nil {
			pkts = build(r)
		}
		return e.l2SendTo(mac, pkts...)
	}
}

func (e *Env) l2SendTo(mac net.HardwareAddr, pkts ...[]byte) error {
	if mac == nil {
		mac = e.Topo.Server.mac()
	}
	for _, p := range pkts {
		if err := l2Send(e.Topo.Client, mac, p); err != nil {
			return err
		}
	}
	return nil
}

func (e *Env) l2Control4() control {
	return control{what: "a plain IPv4 datagram sent the same way", send: e.l2Knock4(nil),
		probe: func() error { return e.expectOpen(e.Topo.Client, portA, "control knock, link-layer path, IPv4") }}
}

func (e *Env) l2Control6() control {
	return control{what: "a plain IPv6 datagram sent the same way", send: e.l2Knock6(nil),
		probe: func() error {
			return expectOpenAt(e.Topo.Client, e.Topo.Server.Addr6, portA, "control knock, link-layer path, IPv6")
		}}
}

func runNotOwnAddress(e *Env) error {
	t := e.Topo
	mapped := func(a netip.Addr) netip.Addr { return netip.AddrFrom16(a.As16()) }
	compat := func(a netip.Addr) netip.Addr {
		b := a.As4()
		var x [16]byte
		copy(x[12:], b[:])
		return netip.AddrFrom16(x)
	}
	subnetBcast := func() netip.Addr {
		b := t.Server.Addr.As4()
		b[3] = 255
		return netip.AddrFrom4(b)
	}()
	v4 := func(dst netip.Addr, mac net.HardwareAddr) func(string) error { return e.l2Knock4To(dst, mac, nil) }
	v6 := func(src, dst netip.Addr, mac net.HardwareAddr) func(string) error {
		return e.l2Knock6From(src, dst, mac, nil)
	}
	c6, s6 := t.Client.Addr6, t.Server.Addr6
	bad := []badKnock{
		{"the subnet broadcast address " + subnetBcast.String(), v4(subnetBcast, macBroadcast)},
		{"the limited broadcast address 255.255.255.255", v4(netip.MustParseAddr("255.255.255.255"), macBroadcast)},
		{"the multicast address 224.0.0.1", v4(netip.MustParseAddr("224.0.0.1"), macAllHosts4)},
		{"the loopback address 127.0.0.1", v4(netip.MustParseAddr("127.0.0.1"), nil)},
		{fmt.Sprintf("%s, the address of %s (not watched)", t.OtherAddr, OtherIfName), v4(t.OtherAddr, nil)},
		{"the multicast address ff02::1", v6(c6, netip.MustParseAddr("ff02::1"), macAllNodes6)},
		{"the loopback address ::1", v6(c6, netip.IPv6Loopback(), nil)},
		{fmt.Sprintf("%s, the address of %s (not watched)", t.OtherAddr6, OtherIfName), v6(c6, t.OtherAddr6, nil)},
		{fmt.Sprintf("the IPv4-mapped source %s", mapped(t.Client.Addr)), v6(mapped(t.Client.Addr), s6, nil)},
		{fmt.Sprintf("the IPv4-compatible source %s", compat(t.Client.Addr)), v6(compat(t.Client.Addr), s6, nil)},
		{fmt.Sprintf("the IPv4-mapped destination %s", mapped(t.Server.Addr)), v6(c6, mapped(t.Server.Addr), nil)},
	}
	return e.expectIgnored("CLASSIC-4.4", bad, e.l2Control4(), e.l2Control6())
}

// expectOpenAt checks that a TCP connection from h to dst:port succeeds.
func expectOpenAt(h Host, dst netip.Addr, port int, why string) error {
	c, err := dialTCP(h, dst, port, openTimeout)
	if err != nil {
		return mismatch(fmt.Sprintf("port %d at %s open for %s (%s)", port, dst, h.NS, why), "connect failed: %v", err)
	}
	c.Close()
	return nil
}
