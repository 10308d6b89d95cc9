//go:build linux

package conformance

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/daemon/replay"
)

func TestSummaryProblem(t *testing.T) {
	r := func(vs ...Verdict) []Result {
		var out []Result
		for _, v := range vs {
			out = append(out, Result{Verdict: v})
		}
		return out
	}
	for _, c := range []struct {
		rs   []Result
		want string
	}{
		{r(Pass, Unsupported, Skipped), ""},
		{nil, "no case was selected"},
		{r(Skipped, Skipped), "no case was run"},
		{r(Unsupported), "no case was run"},
		{r(Pass, Fail), "1 of 2 cases failed"},
		{r(Pass, Error), "could not be set up"},
	} {
		if got := Summarize(c.rs).Problem(); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%v: %q, want %q", c.rs, got, c.want)
		}
	}
}

func TestFrames(t *testing.T) {
	r := rawIPv4{Src: mustAddr("198.18.0.2"), Dst: mustAddr("198.18.0.1"), SrcPort: 4000, DstPort: 1001, Payload: []byte("knock!")}
	udpOK := func(ip []byte) bool {
		hl := int(ip[0]&0x0f) * 4
		return inetChecksum(ip[hl:], pseudoSum(ip[12:16], ip[16:20], 17, len(ip)-hl)) == 0
	}
	good := r.bytes()
	if inetChecksum(good[:20], 0) != 0 || !udpOK(good) {
		t.Fatal("good datagram does not verify")
	}
	bad := r
	bad.UDPCsum = csumBad
	if udpOK(bad.bytes()) {
		t.Error("csumBad verifies")
	}
	bad = r
	bad.BadIPCsum = true
	if inetChecksum(bad.bytes()[:20], 0) == 0 {
		t.Error("BadIPCsum verifies")
	}
	zero := r
	zero.UDPCsum = csumZero
	if b := zero.bytes(); binary.BigEndian.Uint16(b[26:]) != 0 {
		t.Error("csumZero is not 0")
	}
	frags := r.fragments(8)
	if len(frags) != 2 || frags[0][6]&0x20 == 0 || binary.BigEndian.Uint16(frags[1][6:])&0x1fff != 1 ||
		string(append(frags[0][20:], frags[1][20:]...)) != string(r.datagram()) {
		t.Errorf("fragments do not reassemble to the datagram")
	}

	r6 := rawIPv6{Src: mustAddr("2001:db8::2"), Dst: mustAddr("2001:db8::1"), SrcPort: 4000, DstPort: 1001, Payload: []byte("knock!")}
	b := r6.bytes()
	if b[6] != 17 || inetChecksum(b[40:], pseudoSum(b[8:24], b[24:40], 17, len(b)-40)) != 0 {
		t.Error("IPv6 datagram does not verify")
	}
	r6.DestOpts = true
	if b := r6.bytes(); b[6] != ext6DestOpts || b[40] != 17 || len(b) != 40+8+8+6 {
		t.Errorf("destination options: % x", b[:48])
	}
	if f := r6.fragments(0); len(f) != 1 || f[0][6] != ext6Fragment || f[0][43]&1 != 0 {
		t.Error("atomic fragment")
	}
	mapped := rawIPv6{Src: mustAddr("::ffff:198.18.0.2"), Dst: mustAddr("2001:db8::1")}
	if b := mapped.bytes(); b[18] != 0xff || b[19] != 0xff {
		t.Error("IPv4-mapped source not kept in the header")
	}
}

func TestParseReply(t *testing.T) {
	eth := func(typ uint16, ip []byte) []byte {
		f := make([]byte, 14, 14+len(ip))
		binary.BigEndian.PutUint16(f[12:], typ)
		return append(f, ip...)
	}
	srv := mustAddr("198.18.0.1")
	// An ICMP port unreachable quoting a datagram to port 1001.
	quoted := rawIPv4{Src: mustAddr("198.18.0.2"), Dst: srv, SrcPort: 5, DstPort: 1001, Payload: []byte("x")}.bytes()
	icmp := append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, quoted...)
	ip := rawIPv4{Src: srv, Dst: mustAddr("198.18.0.2")}.packet(icmp, false, 0)
	ip[9] = 1
	r, ok := parseReply(eth(0x0800, ip), srv)
	if !ok || !r.icmp || r.quotedDstPort != 1001 {
		t.Errorf("ICMP: %+v %v", r, ok)
	}
	if _, ok := parseReply(eth(0x0800, ip), mustAddr("198.18.0.9")); ok {
		t.Error("reply from another source counted")
	}
	u := rawIPv4{Src: srv, Dst: mustAddr("198.18.0.2"), SrcPort: 1001, DstPort: 4000}.bytes()
	if r, ok := parseReply(eth(0x0800, u), srv); !ok || r.icmp || r.udpDstPort != 4000 {
		t.Errorf("UDP: %+v %v", r, ok)
	}
	ns := rawIPv6{Src: mustAddr("2001:db8::1"), Dst: mustAddr("2001:db8::2")}.packet(58, []byte{135, 0, 0, 0, 0, 0, 0, 0})
	if _, ok := parseReply(eth(0x86dd, ns), mustAddr("2001:db8::1")); ok {
		t.Error("neighbour solicitation counted as a reply")
	}
}

// TestLegacyArchive checks the 0.81 archive the suite writes against
// CLASSIC-5.6 as doormand's importer reads it.
func TestLegacyArchive(t *testing.T) {
	k1, k2 := knockFor(portA), knockFor(portB)
	at := time.Unix(1_700_000_000, 0)
	b, err := legacyArchive(1000, at, k1, k2)
	if err != nil || len(b) != 1000*24 {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	recs, err := replay.ParseLegacy(b, at.Add(time.Hour))
	if err != nil || len(recs) != 2 {
		t.Fatalf("ParseLegacy: %v, %d records", err, len(recs))
	}
	for i, k := range []string{k1, k2} {
		d, _ := knockDigest(k)
		found := false
		for _, r := range recs {
			found = found || (string(r.MAC[:]) == string(d) && r.At.Equal(at))
		}
		if !found {
			t.Errorf("knock %d not in the archive", i)
		}
	}
	// Colliding digests all land somewhere.
	many := make([]string, 999)
	for i := range many {
		many[i] = knockFor(portA)
	}
	b, _ = legacyArchive(1000, at, many...)
	if recs, err := replay.ParseLegacy(b, at.Add(time.Hour)); err != nil || len(recs) != 999 {
		t.Errorf("999 knocks: %d records, %v", len(recs), err)
	}
}

func TestOwnHMAC(t *testing.T) {
	v, err := LoadVectors("../spec/vectors/classic.json")
	if err != nil {
		t.Fatal(err)
	}
	base, ok := findVector(v.Valid, rejectVectorBase)
	if !ok {
		t.Fatal("no base vector")
	}
	digests := map[string]string{}
	for _, r := range v.Reject {
		p, canon := ownHMAC(r.Bytes(), base, portA)
		if len(p) != len(r.Bytes()) {
			t.Errorf("%s: length changed %d -> %d", r.Name, len(r.Bytes()), len(p))
		}
		if strings.Contains(string(r.Bytes()), base.Payload[strings.LastIndexByte(base.Payload, ' ')+1:][:31]) {
			if string(p) == string(r.Bytes()) {
				t.Errorf("%s: not rebuilt", r.Name)
			}
			if prev, dup := digests[canon]; dup {
				t.Errorf("%s and %s share a digest", r.Name, prev)
			}
			digests[canon] = r.Name
		}
		if !classicRE.MatchString(canon) {
			t.Errorf("%s: canonical knock %q is not a knock", r.Name, canon)
		}
	}
	// The defect stays: the leading-zero vector still leads with a zero and
	// its hmac is right for the canonical fields (a lenient parser's view).
	r, _ := findVector(v.Reject, "leading-zero-port")
	p, canon := ownHMAC(r.Bytes(), base, 2231)
	if "0"+canon != string(p) || !strings.HasPrefix(canon, "2231 alice ") {
		t.Errorf("leading-zero-port rebuilt as %q (canonical %q)", p, canon)
	}
	r, _ = findVector(v.Reject, "port-six-digits")
	if p, _ := ownHMAC(r.Bytes(), base, 2231); !strings.HasPrefix(string(p), "122312 ") {
		t.Errorf("port-six-digits rebuilt as %q", p)
	}
}
