//go:build linux

package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/doorman-project/doorman/knocker"
	"github.com/doorman-project/doorman/protocol"
)

// ltVID is the VLAN id of the tagged knock.
const ltVID = 100

func linktypesScenario() Scenario {
	return Scenario{
		Name:        "linktypes",
		Description: "doormand sees knocks on Ethernet, 802.1Q-tagged frames, tun, macvlan, loopback and any; a wrong raw header length misses them",
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
	eth, err := r.Net.Link(client, server, LinkOptions{})
	if err != nil {
		return err
	}
	tun, err := r.Net.TunLink(client, server, LinkOptions{})
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
	rules := r.Dir + "/ruleset.nft"
	if err := os.WriteFile(rules, []byte(scenPolicyDrop), 0o600); err != nil {
		return err
	}
	if out, err := server.Command(ctx, "nft", "-f", rules).CombinedOutput(); err != nil {
		return fmt.Errorf("server ruleset: %w: %s", err, out)
	}

	knock := func(from *Host, to netip.Addr) func() error {
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
				dump := doormanHexdump(d)
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
				dump := doormanHexdump(d)
				frames := parseHexdump(dump)
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
				frames := parseHexdump(doormanHexdump(d))
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
func runLTCase(ctx context.Context, r *Run, server *Host, c ltCase) error {
	d, err := startDoormanWith(ctx, r, server, c.dc)
	if err != nil {
		return err
	}
	defer d.stopOrKill()
	if err := c.knocks(); err != nil {
		return err
	}
	const accepted = `msg="knock accepted"`
	if c.want > 0 {
		ok := d.waitLog(accepted, c.want, 3*time.Second)
		if !r.Check(ok, "[%s] doormand accepted %d of %d knocks", c.dc.name, d.count(accepted), c.want) {
			r.Step("[%s] doormand log:\n%s", c.dc.name, d.log())
			if c.dc.hexdump {
				r.Step("[%s] doormand -X output:\n%s", c.dc.name, doormanHexdump(d))
			}
		} else {
			r.Step("[%s] accepted: %s", c.dc.name, strings.Join(acceptedLines(d.log()), " | "))
		}
	} else {
		missed := !d.waitLog(accepted, 1, 2*time.Second)
		r.Check(missed, "[%s] the knock was missed: no knock accepted within 2s", c.dc.name)
	}
	if c.check != nil {
		c.check(d)
	}
	if counters, err := d.counterSnapshot(); err == nil {
		var parts []string
		for _, k := range sortedCounterNames(counters) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, counters[k]))
		}
		if len(parts) == 0 {
			parts = []string{"(all zero)"}
		}
		r.Step("[%s] counters: %s", c.dc.name, strings.Join(parts, " "))
	}
	d.stopOrKill()
	return nil
}

var acceptedRE = regexp.MustCompile(`src=\S+ group=\S+ port=\d+ dst=\S+`)

// acceptedLines returns "src=… group=… port=… dst=…" of each accepted knock.
func acceptedLines(log string) []string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, `msg="knock accepted"`) {
			out = append(out, acceptedRE.FindString(line))
		}
	}
	return out
}

func firstDumpLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// knockPacket builds a complete IPv4/UDP packet src → dst carrying a
// fresh knock, with correct header and UDP checksums.
func knockPacket(src, dst netip.AddrPort) ([]byte, error) {
	_, payload, err := knocker.Build(knocker.Options{Group: scenGuest, Secret: protocol.Secret(scenSecret), Service: strconv.Itoa(scenSvcPort)})
	if err != nil {
		return nil, err
	}
	var id [2]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	return buildUDP4(src, dst, binary.BigEndian.Uint16(id[:]), payload), nil
}

// buildUDP4 returns an IPv4 packet (no options, DF, TTL 64) holding a UDP
// datagram src → dst with payload; both checksums are filled in.
func buildUDP4(src, dst netip.AddrPort, id uint16, payload []byte) []byte {
	const ipLen, udpLen = 20, 8
	total := ipLen + udpLen + len(payload)
	p := make([]byte, total)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(total))
	binary.BigEndian.PutUint16(p[4:], id)
	binary.BigEndian.PutUint16(p[6:], 0x4000)
	p[8] = 64
	p[9] = 17
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:16], s4[:])
	copy(p[16:20], d4[:])
	binary.BigEndian.PutUint16(p[10:], inetChecksum(p[:ipLen], 0))
	u := p[ipLen:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen+len(payload)))
	copy(u[udpLen:], payload)
	// Pseudo-header: addresses, protocol, UDP length.
	var pseudo uint32
	for i := 12; i < 20; i += 2 {
		pseudo += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	pseudo += 17 + uint32(len(u))
	cs := inetChecksum(u, pseudo)
	if cs == 0 {
		cs = 0xffff // 0 means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(u[6:], cs)
	return p
}

// inetChecksum is the Internet checksum of b, starting from the partial sum
// initial.
func inetChecksum(b []byte, initial uint32) uint16 {
	sum := initial
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// dumpedFrame is one frame of doormand -X output.
type dumpedFrame struct {
	banner   string
	linkType string
	hdrLen   int
	hdrHow   string
	data     []byte // the dumped bytes (at most the first 128)
}

var bannerRE = regexp.MustCompile(`^capture: \d+ bytes on ifindex \d+, link type (.+?), link header length (\d+) \(([^)]*)\)`)

// parseHexdump parses doormand -X output: a banner line per frame followed
// by encoding/hex.Dump lines.
func parseHexdump(s string) []dumpedFrame {
	var frames []dumpedFrame
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\n")
		if m := bannerRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[2])
			frames = append(frames, dumpedFrame{banner: line, linkType: m[1], hdrLen: n, hdrHow: m[3]})
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
