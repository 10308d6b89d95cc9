package knocker

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/protocol"
)

// The vector captured from the 0.81 client (reference section 1).
const (
	vecSecret  = "s3cretKnock"
	vecGroup   = "alice"
	vecService = "2222"
	vecTag     = uint32(1900216097)
	vecPayload = "2222 alice 1900216097 6e5df0a5edc4d12ba369070be523e0d2"
)

func vectorOptions() Options {
	tag := vecTag
	return Options{Service: vecService, Group: vecGroup, Secret: protocol.Secret(vecSecret), Tag: &tag}
}

// payloadRE is the wire form of CLASSIC-2.1/1 and CLASSIC-2.2/1 for group alice.
var payloadRE = regexp.MustCompile(`^[1-9][0-9]{0,4} alice [0-9]{10} [0-9a-f]{32}$`)

// TestBuildVector checks the 0.81 wire vector (CLASSIC-3.1, CLASSIC-2.1/1,
// CLASSIC-2.5: lower-case hex).
func TestBuildVector(t *testing.T) {
	k, payload, err := Build(vectorOptions())
	if err != nil {
		t.Fatal(err)
	}
	if string(payload) != vecPayload {
		t.Errorf("payload = %q, want %q", payload, vecPayload)
	}
	if k.String() != vecPayload || k.Port != 2222 || k.Tag != vecTag || k.GroupString() != vecGroup {
		t.Errorf("knock = %+v (%s)", k, k.String())
	}
}

// TestBuildFreshTags checks CLASSIC-3.3/1 and CLASSIC-11.2: every build draws
// a new tag, the payload is the canonical form, and the MAC verifies.
// TestBuildFreshTags: tags come from crypto/rand, fresh per knock
// (CLASSIC-3.3/1), never from the clock: knocks built in the same instant
// differ (CLASSIC-3.3/2).
func TestBuildFreshTags(t *testing.T) {
	o := Options{Service: "ssh", Group: vecGroup, Secret: protocol.Secret(vecSecret)}
	seen := map[uint32]bool{}
	for i := 0; i < 500; i++ {
		k, payload, err := Build(o)
		if err != nil {
			t.Fatal(err)
		}
		if !payloadRE.Match(payload) || !strings.HasPrefix(string(payload), "22 ") {
			t.Fatalf("payload %q is not the canonical form for port 22", payload)
		}
		var back protocol.Knock
		if err := protocol.ParseKnock(payload, &back); err != nil {
			t.Fatalf("ParseKnock(%q): %v", payload, err)
		}
		if back != k || !back.VerifyMAC(protocol.Secret(vecSecret)) {
			t.Fatalf("payload %q does not verify", payload)
		}
		if seen[k.Tag] {
			t.Fatalf("tag %d repeated after %d knocks", k.Tag, i)
		}
		seen[k.Tag] = true
	}
}

func TestBuildErrors(t *testing.T) {
	long := strings.Repeat("a", 33)
	for _, tc := range []struct {
		name  string
		edit  func(*Options)
		want  error
		wantS string
	}{
		{"empty group", func(o *Options) { o.Group = "" }, ErrBadGroup, `""`},
		{"long group", func(o *Options) { o.Group = long }, ErrBadGroup, long},
		{"group with space", func(o *Options) { o.Group = "al ice" }, ErrBadGroup, "al ice"},
		{"group with dot", func(o *Options) { o.Group = "al.ice" }, ErrBadGroup, "al.ice"},
		{"group with hash", func(o *Options) { o.Group = "al#ice" }, ErrBadGroup, "al#ice"},
		{"no secret", func(o *Options) { o.Secret = nil }, ErrNoSecret, "secret"},
		{"port 0", func(o *Options) { o.Service = "0" }, ErrUnknownService, `"0"`},
		{"port 65536", func(o *Options) { o.Service = "65536" }, ErrUnknownService, "65536"},
		{"empty service", func(o *Options) { o.Service = "" }, ErrUnknownService, "empty"},
		{"unknown name", func(o *Options) { o.Service = "no-such-service-dmkn" }, ErrUnknownService, "no-such-service-dmkn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := vectorOptions()
			tc.edit(&o)
			_, p, err := Build(o)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantS) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.want, tc.wantS)
			}
			if p != nil {
				t.Errorf("payload %q returned with an error", p)
			}
		})
	}
	// A 32-character group is within the limits (CLASSIC-2.2/1).
	o := vectorOptions()
	o.Group = strings.Repeat("Z", 32)
	if _, _, err := Build(o); err != nil {
		t.Errorf("32-character group: %v", err)
	}
}

func TestGroupPunctMatchesProtocol(t *testing.T) {
	if groupPunct != protocol.GroupAlphabet {
		t.Fatalf("groupPunct %q != protocol.GroupAlphabet %q", groupPunct, protocol.GroupAlphabet)
	}
}

// TestLookupService checks CLASSIC-11.2 and the built-in names that minimal
// systems without /etc/services still need.
func TestLookupService(t *testing.T) {
	for in, want := range map[string]uint16{
		"1": 1, "22": 22, "65535": 65535, "02222": 2222,
		"ssh": 22, "SSH": 22, "http": 80, "https": 443, "telnet": 23, "ftp": 21,
		"smtp": 25, "imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995,
		"submission": 587, "rsync": 873, "mysql": 3306, "postgresql": 5432,
		"rdp": 3389, "vnc": 5900,
	} {
		got, err := LookupService(context.Background(), nil, in)
		if err != nil || got != want {
			t.Errorf("LookupService(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65536", "99999999999", "-1", "2x", "no-such-service-dmkn"} {
		if got, err := LookupService(context.Background(), nil, in); !errors.Is(err, ErrUnknownService) {
			t.Errorf("LookupService(%q) = %d, %v; want ErrUnknownService", in, got, err)
		}
	}
	// Names only the built-in table knows, as on a system without a
	// services database, resolve too.
	for name, want := range map[string]uint16{"Postgres": 5432, "imap2": 143} {
		if got, err := LookupService(context.Background(), nil, name); err != nil || got != want {
			t.Errorf("LookupService(%q) = %d, %v; want %d", name, got, err, want)
		}
	}
}

// offlineResolver fails every DNS query without sending anything, so that
// tests of unknown host names stay off the network.
func offlineResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("dns disabled in tests")
	}}
}

func TestResolveHost(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		host, ipnet, want string
	}{
		{"198.18.0.1", "ip", "198.18.0.1"},
		{"198.18.0.1", "ip4", "198.18.0.1"},
		{"2001:db8::1", "ip", "2001:db8::1"},
		{"[2001:db8::1]", "ip6", "2001:db8::1"},
		{"fe80::1%eth0", "ip6", "fe80::1%eth0"},
		{"::ffff:198.18.0.1", "ip4", "198.18.0.1"},
	} {
		got, err := ResolveHost(ctx, offlineResolver(), tc.ipnet, tc.host)
		if err != nil || len(got) != 1 || got[0].String() != tc.want {
			t.Errorf("ResolveHost(%q, %s) = %v, %v; want %s", tc.host, tc.ipnet, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ host, ipnet, msg string }{
		{"198.18.0.1", "ip6", "no IPv6 address"},
		{"2001:db8::1", "ip4", "no IPv4 address"},
		{"", "ip", "empty host"},
		{"[]", "ip", "empty host"},
		{"no-such-host.invalid", "ip", "no-such-host.invalid"},
	} {
		_, err := ResolveHost(ctx, offlineResolver(), tc.ipnet, tc.host)
		if !errors.Is(err, ErrUnknownHost) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ResolveHost(%q, %s) err = %v; want ErrUnknownHost naming %q", tc.host, tc.ipnet, err, tc.msg)
		}
	}
}

func TestSendErrors(t *testing.T) {
	ctx := context.Background()
	o := vectorOptions()
	o.Host, o.Resolver, o.Network = "127.0.0.1", offlineResolver(), "tcp"
	if _, err := Send(ctx, o); err == nil || !strings.Contains(err.Error(), `"tcp"`) {
		t.Errorf("network tcp: err = %v", err)
	}
	o.Network = "udp6"
	if _, err := Send(ctx, o); !errors.Is(err, ErrUnknownHost) {
		t.Errorf("udp6 to an IPv4 literal: err = %v, want ErrUnknownHost", err)
	}
	o.Network, o.Host = "", "no-such-host.invalid"
	if _, err := Send(ctx, o); !errors.Is(err, ErrUnknownHost) {
		t.Errorf("unknown host: err = %v, want ErrUnknownHost", err)
	}
	o.Group = "bad group"
	if _, err := Send(ctx, o); !errors.Is(err, ErrBadGroup) {
		t.Errorf("bad group: err = %v, want ErrBadGroup (checked before the host)", err)
	}
}

// listenUDP opens a knock receiver on a loopback address, or skips when the
// family is missing.
func listenUDP(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("no loopback UDP on %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSendLoopback checks CLASSIC-11.1: one datagram, to the knock port,
// holding exactly the payload Send reports, over IPv4 and IPv6 (CLASSIC-2.7).
func TestSendLoopback(t *testing.T) {
	for _, tc := range []struct{ listen, host, network string }{
		{"127.0.0.1:0", "127.0.0.1", ""},
		{"127.0.0.1:0", "127.0.0.1", "udp4"},
		{"[::1]:0", "::1", "udp6"},
		{"[::1]:0", "[::1]", ""},
	} {
		t.Run(tc.host+"/"+tc.network, func(t *testing.T) {
			l := listenUDP(t, tc.listen)
			o := Options{Host: tc.host, Service: "ssh", Group: vecGroup, Secret: protocol.Secret(vecSecret),
				KnockPort: uint16(l.LocalAddr().(*net.UDPAddr).Port), Network: tc.network, Resolver: offlineResolver()}
			res, err := Send(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Port != 22 || res.Dest.Port() != o.KnockPort || res.Dest.Addr().String() != strings.Trim(tc.host, "[]") {
				t.Errorf("result = %+v", res)
			}
			buf := make([]byte, 2048)
			l.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := l.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			if string(buf[:n]) != string(res.Payload) || !payloadRE.Match(buf[:n]) {
				t.Errorf("received %q, Send reported %q", buf[:n], res.Payload)
			}
			var k protocol.Knock
			if err := protocol.ParseKnock(buf[:n], &k); err != nil || !k.VerifyMAC(protocol.Secret(vecSecret)) || k != res.Knock {
				t.Errorf("received knock does not verify: %v", err)
			}
			l.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, _, err := l.ReadFromUDPAddrPort(buf); err == nil {
				t.Errorf("second datagram %q: a knock is one datagram", buf[:n])
			}
		})
	}
}

// TestSendDefaultKnockPort checks that KnockPort 0 means 1001 (CLASSIC-2.7)
// without sending: the destination is computed before the datagram.
func TestSendDefaultKnockPort(t *testing.T) {
	o := Options{}
	if o.knockPort() != 1001 || DefaultKnockPort != 1001 {
		t.Fatalf("default knock port %d", o.knockPort())
	}
}
