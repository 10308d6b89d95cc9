package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"
)

const modernVectorsPath = "../spec/vectors/modern.json"

type modernVectors struct {
	Protocol    string `json:"protocol"`
	PrologueHex string `json:"prologue_hex"`
	KnockLength int    `json:"knock_length"`
	Keys        map[string]struct {
		Private, Public string
	} `json:"keys"`
	MAC1KeysHex map[string]string `json:"mac1_keys_hex"`
	Guests      []struct {
		Name, Key string
		Ports     []uint16
		Addresses []string
	} `json:"guests"`
	Valid []struct {
		Name, Requirement, Client, Server string
		EphemeralPrivate                  string `json:"ephemeral_private"`
		Request                           struct {
			Time       uint64 `json:"time"`
			Port       uint16 `json:"port"`
			Source     string `json:"source"`
			SourcePort uint16 `json:"source_port"`
		} `json:"request"`
		RequestHex  string `json:"request_hex"`
		DatagramHex string `json:"datagram_hex"`
	} `json:"valid"`
	Reject []struct {
		Name, Requirement, Error string
		DatagramHex              string `json:"datagram_hex"`
	} `json:"reject"`
	Checks []struct {
		Name, Requirement, Knock, Expect string
		ServerNow                        int64  `json:"server_now"`
		WindowSeconds                    int64  `json:"window_seconds"`
		PacketSource                     string `json:"packet_source"`
		SkewNS                           *int64 `json:"skew_ns"`
		Door                             string `json:"door"`
	} `json:"checks"`
	Sequences []struct {
		Name, Requirement string
		Steps             []struct{ Knock, Expect string }
	} `json:"sequences"`
}

func loadModernVectors(t testing.TB) *modernVectors {
	t.Helper()
	b, err := os.ReadFile(modernVectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var v modernVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("modern.json: %v", err)
	}
	if len(v.Valid) == 0 || len(v.Reject) == 0 || len(v.Checks) == 0 || len(v.Sequences) == 0 {
		t.Fatal("modern.json has an empty section")
	}
	return &v
}

func (v *modernVectors) private(t testing.TB, name string) PrivateKey {
	t.Helper()
	k, err := ParsePrivateKey(v.Keys[name].Private)
	if err != nil {
		t.Fatalf("key %s: %v", name, err)
	}
	if got := k.Public().String(); got != v.Keys[name].Public {
		t.Fatalf("key %s: public key %s, vectors say %s", name, got, v.Keys[name].Public)
	}
	return k
}

func (v *modernVectors) datagram(t testing.TB, name string) []byte {
	t.Helper()
	for _, x := range v.Valid {
		if x.Name == name {
			return mustHex(t, x.DatagramHex)
		}
	}
	t.Fatalf("no valid vector %q", name)
	return nil
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestModernVectorConstants: the strings and sizes the vectors were made
// with are the package's (MODERN-12.3, MODERN-12.5, MODERN-12.6).
func TestModernVectorConstants(t *testing.T) {
	v := loadModernVectors(t)
	if v.Protocol != NoiseProtocolName || v.KnockLength != ModernKnockLen || v.PrologueHex != hex.EncodeToString(prologue) {
		t.Fatalf("vectors: %s %d %s; package: %s %d %x", v.Protocol, v.KnockLength, v.PrologueHex, NoiseProtocolName, ModernKnockLen, prologue)
	}
	for name, want := range v.MAC1KeysHex {
		pub, err := ParsePublicKey(v.Keys[name].Public)
		if err != nil {
			t.Fatal(err)
		}
		if got := modernMAC1Key(pub); hex.EncodeToString(got[:]) != want {
			t.Errorf("mac1 key of %s: %x, want %s", name, got, want)
		}
	}
}

// TestModernVectorBuild: SealKnock produces each valid vector byte for byte
// from the same keys and ephemeral bytes (MODERN-12.3/1, MODERN-12.5,
// MODERN-12.6/1, MODERN-12.7).
func TestModernVectorBuild(t *testing.T) {
	v := loadModernVectors(t)
	for _, x := range v.Valid {
		t.Run(x.Name, func(t *testing.T) {
			client := v.private(t, x.Client)
			server := v.private(t, x.Server)
			eph, err := ParsePrivateKey(x.EphemeralPrivate)
			if err != nil {
				t.Fatal(err)
			}
			req := Request{Time: x.Request.Time, Port: x.Request.Port, SourcePort: x.Request.SourcePort}
			if x.Request.Source != "" {
				req.Source = netip.MustParseAddr(x.Request.Source)
			}
			var plain [ModernRequestLen]byte
			if err := req.encode(&plain); err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(plain[:]); got != x.RequestHex {
				t.Fatalf("%s: request\n got %s\nwant %s", x.Requirement, got, x.RequestHex)
			}
			d, err := SealKnock(nil, &client, server.Public(), &req, bytes.NewReader(eph[:]))
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(d); got != x.DatagramHex {
				t.Fatalf("%s: datagram\n got %s\nwant %s", x.Requirement, got, x.DatagramHex)
			}
		})
	}
}

// TestModernVectorOpen: each valid vector opens, under its server's key
// only, to its request and its client's public key (MODERN-12.5,
// MODERN-12.13).
func TestModernVectorOpen(t *testing.T) {
	v := loadModernVectors(t)
	for _, x := range v.Valid {
		t.Run(x.Name, func(t *testing.T) {
			server := v.private(t, x.Server)
			client := v.private(t, x.Client)
			d := mustHex(t, x.DatagramHex)
			k, err := NewOpener(&server).Open(d)
			if err != nil {
				t.Fatalf("%s: Open: %v", x.Requirement, err)
			}
			if k.Client != client.Public() {
				t.Errorf("client key %v, want %v", k.Client, client.Public())
			}
			want := Request{Time: x.Request.Time, Port: x.Request.Port, SourcePort: x.Request.SourcePort}
			if x.Request.Source != "" {
				want.Source = netip.MustParseAddr(x.Request.Source)
			}
			if k.Request != want {
				t.Errorf("request %+v, want %+v", k.Request, want)
			}
			other := v.private(t, "server-b")
			if _, err := NewOpener(&other).Open(d); !errors.Is(err, ErrMAC1) {
				t.Errorf("another doorman's key: %v, want ErrMAC1 (MODERN-12.6/2)", err)
			}
		})
	}
}

var modernErrorNames = map[string]error{
	"length":     ErrModernLength,
	"not-modern": ErrNotModern,
	"type":       ErrModernType,
	"mac1":       ErrMAC1,
	"decrypt":    ErrDecrypt,
	"port":       ErrModernPort,
	"flags":      ErrModernFlags,
	"source":     ErrModernSource,
	"forward":    ErrModernForward,
	"padding":    ErrModernPadding,
}

// precheckErrors are the errors Precheck itself must return, before any
// public-key work (MODERN-12.6/2, MODERN-12.11).
var precheckErrors = map[string]bool{"length": true, "not-modern": true, "type": true, "mac1": true}

// TestModernVectorReject: each reject vector is refused with the named
// error, and the cheap ones already by Precheck (MODERN-12.3/2,
// MODERN-12.4, MODERN-12.5, MODERN-12.6/2, MODERN-12.8/1).
func TestModernVectorReject(t *testing.T) {
	v := loadModernVectors(t)
	server := v.private(t, "server-a")
	o := NewOpener(&server)
	for _, x := range v.Reject {
		t.Run(x.Name, func(t *testing.T) {
			want, ok := modernErrorNames[x.Error]
			if !ok {
				t.Fatalf("unknown error name %q", x.Error)
			}
			d := mustHex(t, x.DatagramHex)
			err := o.Precheck(d)
			if precheckErrors[x.Error] {
				if err != want {
					t.Fatalf("%s: Precheck = %v, want %v", x.Requirement, err, want)
				}
			} else if err != nil {
				t.Fatalf("%s: Precheck = %v, want it to pass to the Noise stage", x.Requirement, err)
			}
			if _, err := o.Open(d); err != want {
				t.Fatalf("%s: Open = %v, want %v", x.Requirement, err, want)
			}
		})
	}
}

func (v *modernVectors) guests(t testing.TB) map[PublicKey]*Guest {
	t.Helper()
	out := map[PublicKey]*Guest{}
	for _, g := range v.Guests {
		key, err := ParsePublicKey(g.Key)
		if err != nil {
			t.Fatal(err)
		}
		guest := &Guest{Name: g.Name, Key: key, Ports: g.Ports}
		for _, a := range g.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				p = netip.PrefixFrom(netip.MustParseAddr(a), netip.MustParseAddr(a).BitLen())
			}
			guest.Nets = append(guest.Nets, p)
		}
		out[key] = guest
	}
	return out
}

var modernCheckNames = map[string]error{
	"accept":              nil,
	"unknown-guest":       ErrUnknownGuest,
	"clock-skew":          ErrClockSkew,
	"source-mismatch":     ErrSourceMismatch,
	"port-not-allowed":    ErrPortNotAllowed,
	"address-not-allowed": ErrAddrNotAllowed,
}

// TestModernVectorChecks: the checks after the guest lookup, as a doorman
// runs them (MODERN-12.13 to MODERN-12.16): the time window and the skew
// it reports, the source binding and the door's address, ports and
// addresses.
func TestModernVectorChecks(t *testing.T) {
	v := loadModernVectors(t)
	server := v.private(t, "server-a")
	o := NewOpener(&server)
	guests := v.guests(t)
	for _, c := range v.Checks {
		t.Run(c.Name, func(t *testing.T) {
			want, ok := modernCheckNames[c.Expect]
			if !ok {
				t.Fatalf("unknown expectation %q", c.Expect)
			}
			k, err := o.Open(v.datagram(t, c.Knock))
			if err != nil {
				t.Fatal(err)
			}
			src := netip.MustParseAddr(c.PacketSource)
			g, ok := guests[k.Client]
			if !ok {
				if want != ErrUnknownGuest {
					t.Fatalf("%s: client %v is no guest, want %s", c.Requirement, k.Client, c.Expect)
				}
				return
			}
			skew, err := VerifyModern(&k, g, src, time.Unix(0, c.ServerNow), time.Duration(c.WindowSeconds)*time.Second)
			if err != want {
				t.Fatalf("%s: VerifyModern = %v, want %v", c.Requirement, err, want)
			}
			if c.SkewNS != nil && int64(skew) != *c.SkewNS {
				t.Errorf("skew %d, want %d", skew, *c.SkewNS)
			}
			if c.Door != "" {
				door, err := k.Door(src)
				if err != nil || door != netip.MustParseAddr(c.Door) {
					t.Errorf("door %v (%v), want %s", door, err, c.Door)
				}
			}
		})
	}
}

// TestModernVectorSequences: per-guest freshness (MODERN-12.17/1), checked
// with the rule the durable store implements: a knock is accepted only if
// its time is later than the last accepted from the same guest.
func TestModernVectorSequences(t *testing.T) {
	v := loadModernVectors(t)
	server := v.private(t, "server-a")
	o := NewOpener(&server)
	for _, s := range v.Sequences {
		t.Run(s.Name, func(t *testing.T) {
			last := map[PublicKey]uint64{}
			for i, step := range s.Steps {
				k, err := o.Open(v.datagram(t, step.Knock))
				if err != nil {
					t.Fatal(err)
				}
				got := "stale"
				if prev, seen := last[k.Client]; !seen || k.Time > prev {
					last[k.Client] = k.Time
					got = "accept"
				}
				if got != step.Expect {
					t.Fatalf("%s: step %d (%s): %s, want %s", s.Requirement, i, step.Knock, got, step.Expect)
				}
			}
		})
	}
}

// TestModernVectorsRegenerate runs the independent generator, when Python
// and its cryptography package are here, and checks that it reproduces
// modern.json exactly: the file is what the generator says.
func TestModernVectorsRegenerate(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	if err := exec.Command(py, "-c", "import cryptography.hazmat.primitives.ciphers.aead").Run(); err != nil {
		t.Skip("python3 has no cryptography package")
	}
	out, err := exec.Command(py, "../spec/vectors/gen_modern.py").Output()
	if err != nil {
		t.Fatalf("gen_modern.py: %v", err)
	}
	want, err := os.ReadFile(modernVectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Fatal("gen_modern.py output differs from modern.json: regenerate with python3 spec/vectors/gen_modern.py > spec/vectors/modern.json")
	}
}
