package knocker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/protocol"
)

func modernKeys(t *testing.T) (client, server protocol.PrivateKey) {
	t.Helper()
	var err error
	if client, err = protocol.NewPrivateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if server, err = protocol.NewPrivateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	return client, server
}

// TestSendModernLoopback: one datagram of the fixed size to the knock
// port, which the doorman's key opens to the knocker's key and the request
// SendModern reports; a stated source is the address the datagram came
// from, over IPv4 and IPv6, and the time is the knocker's clock when it
// sent (MODERN-12.3/1, MODERN-12.9, MODERN-12.15, CLASSIC-2.7).
func TestSendModernLoopback(t *testing.T) {
	client, server := modernKeys(t)
	opener := protocol.NewOpener(&server)
	for _, tc := range []struct {
		listen, host string
		source       SourceMode
		sourcePort   uint16
	}{
		{"127.0.0.1:0", "127.0.0.1", SourceLocal, 0},
		{"127.0.0.1:0", "127.0.0.1", SourceSeen, 0},
		{"127.0.0.1:0", "127.0.0.1", SourceLocal, 50123},
		{"[::1]:0", "::1", SourceLocal, 0},
		{"[::1]:0", "[::1]", SourceSeen, 1},
	} {
		t.Run(tc.host+"/"+tc.source.String(), func(t *testing.T) {
			l := listenUDP(t, tc.listen)
			before := time.Now()
			o := ModernOptions{Host: tc.host, Service: "ssh", ServerKey: server.Public(), Key: client,
				KnockPort: uint16(l.LocalAddr().(*net.UDPAddr).Port), Resolver: offlineResolver(),
				Source: tc.source, SourcePort: tc.sourcePort}
			res, err := SendModern(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			l.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := l.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			if n != protocol.ModernKnockLen || !bytes.Equal(buf[:n], res.Payload) {
				t.Fatalf("received %d bytes, SendModern reported %d", n, len(res.Payload))
			}
			if from != res.Local {
				t.Errorf("came from %v, SendModern reports %v", from, res.Local)
			}
			k, err := opener.Open(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
			if k.Client != client.Public() || k.Request != res.Request || k.Port != 22 || k.SourcePort != tc.sourcePort {
				t.Errorf("opened %+v, sent %+v", k, res.Request)
			}
			if k.AsSeen() != (tc.source == SourceSeen) {
				t.Errorf("as seen = %v for %v", k.AsSeen(), tc.source)
			}
			if door, err := k.Door(from.Addr()); err != nil || door != from.Addr().Unmap() {
				t.Errorf("door %v: %v", door, err)
			}
			if _, err := protocol.CheckTime(k.Time, before, 0); err != nil {
				t.Errorf("timestamp %d not now (%v)", k.Time, before)
			}
			l.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, _, err := l.ReadFromUDPAddrPort(buf); err == nil {
				t.Error("a second datagram: a knock is one datagram")
			}
		})
	}
}

// TestBuildModernVector: with the vectors' keys, ephemeral bytes and
// clock, BuildModern reproduces the published knock (MODERN-12.3/1).
func TestBuildModernVector(t *testing.T) {
	b, err := os.ReadFile("../spec/vectors/modern.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Keys  map[string]struct{ Private, Public string }
		Valid []struct {
			Name, Client, Server string
			EphemeralPrivate     string `json:"ephemeral_private"`
			DatagramHex          string `json:"datagram_hex"`
		}
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, x := range v.Valid {
		if x.Name != "ipv4-stated" {
			continue
		}
		client, _ := protocol.ParsePrivateKey(v.Keys[x.Client].Private)
		server, _ := protocol.ParsePublicKey(v.Keys[x.Server].Public)
		eph, _ := protocol.ParsePrivateKey(x.EphemeralPrivate)
		o := ModernOptions{Service: "22", ServerKey: server, Key: client, Source: SourceLocal,
			Now: func() time.Time { return time.Unix(1767225600, 0) }, Rand: bytes.NewReader(eph[:])}
		_, p, err := BuildModern(context.Background(), o, netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.7"))
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(p) != x.DatagramHex {
			t.Fatalf("built\n%x\nvector\n%s", p, x.DatagramHex)
		}
		return
	}
	t.Fatal("vector ipv4-stated not found")
}

// TestBuildModernRefuses: missing or weak keys and a stated source the
// doorman would refuse are errors before anything is sent.
func TestBuildModernRefuses(t *testing.T) {
	client, server := modernKeys(t)
	v4, v6 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:db8::1")
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		o           ModernOptions
		dest, local netip.Addr
		want        error
	}{
		{"no key", ModernOptions{Service: "22", ServerKey: server.Public()}, v4, v4, ErrNoKey},
		{"no server key", ModernOptions{Service: "22", Key: client}, v4, v4, ErrNoServerKey},
		{"weak server key", ModernOptions{Service: "22", Key: client, ServerKey: protocol.PublicKey{1}}, v4, v4, protocol.ErrWeakKey},
		{"unknown service", ModernOptions{Service: "no-such-service", Key: client, ServerKey: server.Public(), Resolver: offlineResolver()}, v4, v4, ErrUnknownService},
		{"family", ModernOptions{Service: "22", Key: client, ServerKey: server.Public()}, v6, v4, ErrSourceFamily},
		{"fixed family", ModernOptions{Service: "22", Key: client, ServerKey: server.Public(), Source: SourceFixed, SourceAddr: v6}, v4, v4, ErrSourceFamily},
	} {
		if _, _, err := BuildModern(ctx, tc.o, tc.dest, tc.local); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	o := ModernOptions{Service: "22", Key: client, ServerKey: server.Public(), Source: SourceFixed}
	if _, _, err := BuildModern(ctx, o, v4, v4); err == nil {
		t.Error("fixed source without an address accepted")
	}
	o = ModernOptions{Service: "22", Key: client, ServerKey: server.Public(), Now: func() time.Time { return time.Unix(-1, 0) }}
	if _, _, err := BuildModern(ctx, o, v4, v4); err == nil {
		t.Error("a clock before 1970 accepted")
	}
	o = ModernOptions{Service: "22", Key: client, ServerKey: server.Public(), Source: SourceFixed, SourceAddr: netip.MustParseAddr("::ffff:198.18.0.9")}
	req, _, err := BuildModern(ctx, o, v4, netip.Addr{})
	if err != nil || req.Source != netip.MustParseAddr("198.18.0.9") {
		t.Errorf("mapped fixed source: %v %v", req.Source, err)
	}
}

// TestSendModernChecksFirst: a knock that cannot be built is not sent.
func TestSendModernChecksFirst(t *testing.T) {
	l := listenUDP(t, "127.0.0.1:0")
	_, server := modernKeys(t)
	o := ModernOptions{Host: "127.0.0.1", Service: "22", ServerKey: server.Public(), KnockPort: uint16(l.LocalAddr().(*net.UDPAddr).Port)}
	if _, err := SendModern(context.Background(), o); !errors.Is(err, ErrNoKey) {
		t.Fatalf("%v", err)
	}
	o.Key, _ = protocol.NewPrivateKey(rand.Reader)
	o.Source, o.SourceAddr = SourceFixed, netip.MustParseAddr("2001:db8::1")
	if _, err := SendModern(context.Background(), o); !errors.Is(err, ErrSourceFamily) {
		t.Fatalf("%v", err)
	}
	l.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, err := l.ReadFromUDPAddrPort(make([]byte, 512)); err == nil {
		t.Fatal("a datagram was sent")
	}
}

// TestClientKeyFile: knock keygen's file reads back; a file others may
// read is refused with the fix; a key is never overwritten; errors name
// file and line without the key (MODERN-12.2/2, MODERN-12.22).
func TestClientKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "knock.key")
	k, _ := protocol.NewPrivateKey(rand.Reader)
	if err := WritePrivateKey(p, &k); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadPrivateKey(p); err != nil || got != k {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	if err := WritePrivateKey(p, &k); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("overwrite: %v", err)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", fi.Mode())
		}
		os.Chmod(p, 0o640)
		if _, err := LoadPrivateKey(p); !errors.Is(err, ErrKeyPerm) || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Fatalf("0640: %v", err)
		}
	}
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("# mine\n"+k.Base64()[:43]+"\n"), 0o600)
	_, err := LoadPrivateKey(bad)
	if err == nil || !strings.HasPrefix(err.Error(), bad+":2: private key: ") || strings.Contains(err.Error(), k.Base64()[:20]) {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := LoadPrivateKey(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := LoadPrivateKey(dir); err == nil {
		t.Fatal("a directory accepted")
	}
}

// TestModernConfigRecords: the modern records of the client configuration
// (MODERN-12.22).
func TestModernConfigRecords(t *testing.T) {
	const key = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
	var m ModernConfig
	for _, r := range [][2]string{
		{"private-key", "keys/knock.key # mine"},
		{"server", "GW.example.net " + key + " # the gateway"},
		{"server", "[2001:db8::1] " + key},
		{"source", "seen"},
	} {
		if known, err := m.Record("/home/u/.knockcf", r[0], r[1]); !known || err != nil {
			t.Fatalf("%v: %v %v", r, known, err)
		}
	}
	if m.PrivateKeyFile != "/home/u/keys/knock.key" || m.Source != SourceSeen {
		t.Errorf("%+v", m)
	}
	for _, host := range []string{"gw.example.net", "gw.example.net.", "2001:db8::1", "[2001:DB8::1]"} {
		if k, ok := m.ServerKey(host); !ok || k.String() != key {
			t.Errorf("ServerKey(%s) = %v %v", host, k, ok)
		}
	}
	if _, ok := m.ServerKey("other.example"); ok {
		t.Error("a key for an unknown host")
	}
	if known, _ := m.Record("f", "group", "alice"); known {
		t.Error("group claimed as a modern record")
	}
	if _, err := m.Record("f", "source", "198.18.0.7"); err != nil || m.Source != SourceFixed || m.SourceAddr != netip.MustParseAddr("198.18.0.7") {
		t.Errorf("fixed source: %v %+v", err, m)
	}
	for _, r := range [][2]string{
		{"private-key", ""},
		{"private-key", "a b"},
		{"private-key", "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="},
		{"server", "gw.example.net"},
		{"server", "[] " + key},
		{"server", "[gw.example.net] " + key},
		{"server", ". " + key},
		{"server", "gw.example.net " + key[:43]},
		{"server", "gw.example.net AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"source", "nat"},
		{"source", "0.0.0.0"},
		{"source", "fe80::1%eth0"},
	} {
		_, err := m.Record("f", r[0], r[1])
		if err == nil {
			t.Errorf("%v accepted", r)
		} else if strings.Contains(err.Error(), "dwdtCnMY") {
			t.Errorf("%v: error shows the private key: %v", r, err)
		}
	}
}

// TestDryRunModern: the knock DryRunModern builds is the one SendModern
// would send (it opens, states the local address the system would send
// from), and nothing is sent.
func TestDryRunModern(t *testing.T) {
	client, server := modernKeys(t)
	l := listenUDP(t, "127.0.0.1:0")
	o := ModernOptions{Host: "127.0.0.1", Service: "ssh", ServerKey: server.Public(), Key: client,
		KnockPort: uint16(l.LocalAddr().(*net.UDPAddr).Port), Resolver: offlineResolver()}
	res, err := DryRunModern(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	k, err := protocol.NewOpener(&server).Open(res.Payload)
	if err != nil || k.Request != res.Request || k.Source != netip.MustParseAddr("127.0.0.1") || res.Dest.Port() != o.KnockPort {
		t.Fatalf("dry run %+v opened as %+v, %v", res, k, err)
	}
	l.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, err := l.ReadFromUDPAddrPort(make([]byte, 512)); err == nil {
		t.Fatal("a dry run sent a datagram")
	}
	o.Network = "udp6"
	if _, err := DryRunModern(context.Background(), o); !errors.Is(err, ErrUnknownHost) {
		t.Fatalf("IPv6 only to an IPv4 address: %v", err)
	}
}

// TestSendModernFixedSourceFamily: with a stated address, SendModern
// knocks to the host's address of that family, and refuses a network of
// the other one before sending anything.
func TestSendModernFixedSourceFamily(t *testing.T) {
	client, server := modernKeys(t)
	l := listenUDP(t, "[::1]:0")
	o := ModernOptions{Host: "::1", Service: "22", ServerKey: server.Public(), Key: client,
		KnockPort: uint16(l.LocalAddr().(*net.UDPAddr).Port), Source: SourceFixed, SourceAddr: netip.MustParseAddr("::1")}
	res, err := SendModern(context.Background(), o)
	if err != nil || !res.Dest.Addr().Is6() || res.Request.Source != netip.MustParseAddr("::1") {
		t.Fatalf("%+v %v", res, err)
	}
	o.Network = "udp4"
	if _, err := SendModern(context.Background(), o); !errors.Is(err, ErrSourceFamily) {
		t.Fatalf("IPv6 source over udp4: %v", err)
	}
	o.Network, o.Host = "", "127.0.0.1"
	if _, err := SendModern(context.Background(), o); !errors.Is(err, ErrSourceFamily) {
		t.Fatalf("IPv6 source to an IPv4 host: %v", err)
	}
}
