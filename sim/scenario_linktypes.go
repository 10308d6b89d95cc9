//go:build linux

package sim

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	dt "github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
	"github.com/doorman-project/doorman/knocker"
	"github.com/doorman-project/doorman/protocol"
)

// ltVID is the VLAN id of the tagged knock.
const ltVID = 100

func linktypesScenario() Scenario {
	return Scenario{
		Name:        "linktypes",
		Description: "doormand sees knocks on Ethernet, 802.1Q-tagged frames, tun, macvlan, loopback and any; a wrong raw header length misses them",
		Tags:        []string{TagLinktypes},
		Needs:       []Need{NeedDoormand, NeedNftables, NeedTun, NeedMacvlan, NeedPacket},
		Run:         runLinktypes,
	}
}

// ltCase is one daemon run of the linktypes scenario.
type ltCase struct {
	what   string // what the case shows, and what its stand-in covers
	dc     daemonConfig
	knocks func() error // sends the case's knocks
	want   int          // knocks that must be accepted; 0 = none within 2s
	check  func(d *doorman)
}

func runLinktypes(ctx context.Context, r *Run) error {
	server, err := r.Net.AddHost("server")
	if err != nil {
		return err
	}
	client, err := r.Net.AddHost("client")
	if err != nil {
		return err
	}
	eth, err := r.Net.Link(client, server, netsim.LinkOptions{})
	if err != nil {
		return err
	}
	tun, err := r.Net.TunLink(client, server, netsim.LinkOptions{})
	if err != nil {
		return err
	}
	// Without arp_ignore the server's veth would answer ARP for the
	// macvlan's address too, and knocks for it would arrive on the veth.
	if err := server.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/all/arp_ignore", []byte("1\n"), 0)
	}); err != nil {
		return fmt.Errorf("arp_ignore: %w", err)
	}
	mv, err := r.Net.MACVLAN(eth.B)
	if err != nil {
		return err
	}
	r.Step("server: veth %s %s, tun %s %s (peer %s), macvlan %s %s on %s, lo 127.0.0.1",
		eth.B.Name, eth.B.Addr4, tun.B.Name, tun.B.Addr4, tun.A.Addr4, mv.Name, mv.Addr4, eth.B.Name)
	if err := installPolicyDrop(ctx, r, server); err != nil {
		return err
	}

	knock := func(from *netsim.Host, to netip.Addr) func() error {
		return func() error {
			r.Step("knock from %s to %s:%d", from.Name(), to, scenKnockPort)
			_, err := knockFrom(from, to)
			return err
		}
	}
	network := "capture network\n"
	cases := []ltCase{
		{
			what:   "Ethernet (veth), network capture",
			dc:     daemonConfig{name: "ethernet", iface: eth.B.Name, extra: network},
			knocks: knock(client, eth.B.Addr4), want: 1,
		},
		{
			what: fmt.Sprintf("802.1Q-tagged knock (vlan %d) injected onto the veth, network capture. Stand-in: the tagged frame "+
				"arrives on the parent interface; there is no VLAN sub-interface with its own address, so this covers "+
				"the capture path for tagged frames (the kernel strips the tag before packet sockets), not a daemon "+
				"listening on eth0.%d or the firewall door on it", ltVID, ltVID),
			dc: daemonConfig{name: "tagged", iface: eth.B.Name, extra: network, hexdump: true},
			knocks: func() error {
				pkt, err := knockPacket(netip.AddrPortFrom(eth.A.Addr4, 40000), netip.AddrPortFrom(eth.B.Addr4, scenKnockPort))
				if err != nil {
					return err
				}
				r.Step("inject a tagged frame (vlan %d, %d-byte IPv4/UDP knock %s -> %s:%d) from %s", ltVID, len(pkt),
					eth.A.Addr4, eth.B.Addr4, scenKnockPort, eth.A.Name)
				return eth.A.InjectTagged(ltVID, pkt)
			},
			want: 1,
			check: func(d *doorman) {
				dump := d.HexDump()
				r.Check(strings.Contains(dump, fmt.Sprintf("802.1Q vlan %d tag removed by the kernel", ltVID)),
					"the -X dump reports the 802.1Q tag (vlan %d) the kernel removed: %s", ltVID, firstDumpLine(dump))
			},
		},
		{
			what: "raw-IP tun link (no link header), network capture. Stand-in for WireGuard/ipip/gre: same ARPHRD-less, " +
				"point-to-point shape, but no encryption, no outer header, and tun is ARPHRD_NONE, not wireguard's or ipip's own type",
			dc:     daemonConfig{name: "tun", iface: tun.B.Name, extra: network},
			knocks: knock(client, tun.B.Addr4), want: 1,
		},
		{
			what:   "macvlan (bridge mode) on the veth, network capture, knock to the macvlan's own address",
			dc:     daemonConfig{name: "macvlan", iface: mv.Name, extra: network},
			knocks: knock(client, mv.Addr4), want: 1,
		},
		{
			what:   "loopback: interface lo, knock from the server itself to 127.0.0.1",
			dc:     daemonConfig{name: "loopback", iface: "lo", extra: network},
			knocks: knock(server, netip.MustParseAddr("127.0.0.1")), want: 1,
		},
		{
			what: "the any device: knocks over the veth and over the tun to the server's addresses",
			dc:   daemonConfig{name: "any", iface: "any", extra: network},
			knocks: func() error {
				if err := knock(client, eth.B.Addr4)(); err != nil {
					return err
				}
				return knock(client, tun.B.Addr4)()
			},
			want: 2,
		},
		{
			what:   "raw capture with a WRONG link-header-length 0 on Ethernet (the right one is 14): the filter misses the knock",
			dc:     daemonConfig{name: "raw-wrong", iface: eth.B.Name, extra: "capture raw\nlink-header-length 0\n"},
			knocks: knock(client, eth.B.Addr4), want: 0,
		},
		{
			what:   "the same with -X: the dump shows where the IP header really starts",
			dc:     daemonConfig{name: "raw-wrong-x", iface: eth.B.Name, extra: "capture raw\nlink-header-length 0\n", hexdump: true},
			knocks: knock(client, eth.B.Addr4), want: 0,
			check: func(d *doorman) {
				frames := parseHexdump(d.HexDump())
				if !r.Check(len(frames) > 0, "the -X dump shows the missed knock (%d frames)", len(frames)) {
					return
				}
				f := frames[0]
				r.Check(f.linkType == "ethernet" && f.hdrLen == 0, "the dump banner names link type %q and the configured length %d (%s)",
					f.linkType, f.hdrLen, f.hdrHow)
				off := ipv4Offset(f.data, eth.B.Addr4, scenKnockPort)
				r.Check(off == 14, "the dumped bytes put the knock's IPv4 header at offset %d: the right link-header-length for Ethernet is 14", off)
			},
		},
		{
			what:   "raw capture with the length guessed from the device type, with -X",
			dc:     daemonConfig{name: "raw-guessed-x", iface: eth.B.Name, extra: "capture raw\n", hexdump: true},
			knocks: knock(client, eth.B.Addr4), want: 1,
			check: func(d *doorman) {
				frames := parseHexdump(d.HexDump())
				ok := len(frames) > 0 && frames[0].linkType == "ethernet" && frames[0].hdrLen == 14
				banner := "none"
				if len(frames) > 0 {
					banner = frames[0].banner
				}
				r.Check(ok, "the -X banner says link type ethernet, link header length 14: %s", banner)
			},
		},
	}
	for _, c := range cases {
		r.Step("--- %s", c.what)
		if err := runLTCase(ctx, r, server, c); err != nil {
			return err
		}
	}
	return nil
}

// runLTCase starts the case's daemon, knocks, checks and stops it.
func runLTCase(ctx context.Context, r *Run, server *netsim.Host, c ltCase) error {
	d, err := startDoormanWith(ctx, r, server, c.dc)
	if err != nil {
		return err
	}
	defer d.Stop()
	if err := c.knocks(); err != nil {
		return err
	}
	if c.want > 0 {
		evs, err := d.Wait(dt.Accepted(), c.want, 3*time.Second)
		if !r.Check(err == nil, "[%s] doormand accepted %d of %d knocks", c.dc.name, len(evs), c.want) {
			r.Step("[%s] doormand log:\n%s", c.dc.name, d.Log())
			if c.dc.hexdump {
				r.Step("[%s] doormand -X output:\n%s", c.dc.name, d.HexDump())
			}
		} else {
			var seen []string
			for _, e := range evs {
				seen = append(seen, fmt.Sprintf("src=%s group=%s port=%d dst=%s", e.Src, e.Group, e.Port, e.Dst))
			}
			r.Step("[%s] accepted: %s", c.dc.name, strings.Join(seen, " | "))
		}
	} else {
		_, err := d.Wait(dt.Accepted(), 1, 2*time.Second)
		r.Check(err != nil, "[%s] the knock was missed: no knock accepted within 2s", c.dc.name)
	}
	if c.check != nil {
		c.check(d)
	}
	if ev, err := d.Counters(5 * time.Second); err == nil {
		counters := ev.Counters
		var parts []string
		for _, k := range sortedCounterNames(counters) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, counters[k]))
		}
		if len(parts) == 0 {
			parts = []string{"(all zero)"}
		}
		r.Step("[%s] counters: %s", c.dc.name, strings.Join(parts, " "))
	}
	return d.Stop()
}

func firstDumpLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// knockPacket builds a complete IPv4/UDP packet src → dst carrying a
// fresh knock.
func knockPacket(src, dst netip.AddrPort) ([]byte, error) {
	_, payload, err := knocker.Build(knocker.Options{Group: scenGuest, Secret: protocol.Secret(scenSecret), Service: strconv.Itoa(scenSvcPort)})
	if err != nil {
		return nil, err
	}
	return netsim.UDPPacket(src, dst, payload)
}

// dumpedFrame is one frame of doormand -X output.
type dumpedFrame struct {
	banner   string
	linkType string
	hdrLen   int
	hdrHow   string
	data     []byte // the dumped bytes (at most the first 128)
}

// parseBanner reads the line doormand -X prints before each frame,
// "capture: N bytes on ifindex I, link type T, link header length L (how)".
// The -X dump is the feature under test here, not a log: its banner is
// documented output for people debugging a link-header-length.
func parseBanner(line string) (dumpedFrame, bool) {
	rest, ok := strings.CutPrefix(line, "capture: ")
	if !ok {
		return dumpedFrame{}, false
	}
	_, rest, ok1 := strings.Cut(rest, ", link type ")
	lt, rest, ok2 := strings.Cut(rest, ", link header length ")
	num, how, ok3 := strings.Cut(rest, " (")
	n, err := strconv.Atoi(num)
	if !ok1 || !ok2 || !ok3 || err != nil || !strings.HasSuffix(how, ")") {
		return dumpedFrame{}, false
	}
	return dumpedFrame{banner: line, linkType: lt, hdrLen: n, hdrHow: strings.TrimSuffix(how, ")")}, true
}

// parseHexdump parses doormand -X output: a banner line per frame followed
// by encoding/hex.Dump lines.
func parseHexdump(s string) []dumpedFrame {
	var frames []dumpedFrame
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\n")
		if f, ok := parseBanner(line); ok {
			frames = append(frames, f)
			continue
		}
		if len(frames) == 0 || len(line) < 10 {
			continue
		}
		// "00000000  45 00 00 3c ...  |E..<|": hex between the offset and '|'.
		hexPart, _, _ := strings.Cut(line[8:], "|")
		for _, tok := range strings.Fields(hexPart) {
			b, err := hex.DecodeString(tok)
			if err != nil || len(b) != 1 {
				break
			}
			frames[len(frames)-1].data = append(frames[len(frames)-1].data, b[0])
		}
	}
	return frames
}

// ipv4Offset returns the offset in frame of an IPv4 header for UDP to dst
// and port, or -1.
func ipv4Offset(frame []byte, dst netip.Addr, port uint16) int {
	d4 := dst.As4()
	for o := 0; o+28 <= len(frame); o++ {
		ihl := int(frame[o]&0x0f) * 4
		if frame[o]>>4 != 4 || ihl < 20 || frame[o+9] != 17 || o+ihl+4 > len(frame) {
			continue
		}
		if [4]byte(frame[o+16:o+20]) == d4 && binary.BigEndian.Uint16(frame[o+ihl+2:]) == port {
			return o
		}
	}
	return -1
}
