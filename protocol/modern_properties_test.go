package protocol

import (
	"bytes"
	"crypto/rand"
	"net/netip"
	"testing"

	"pgregory.net/rapid"
)

func genPrivateKey(label string) *rapid.Generator[PrivateKey] {
	return rapid.Custom(func(t *rapid.T) PrivateKey {
		return PrivateKey(rapid.SliceOfN(rapid.Byte(), KeySize, KeySize).Draw(t, label))
	})
}

func genRequest() *rapid.Generator[Request] {
	return rapid.Custom(func(t *rapid.T) Request {
		r := Request{
			Time: rapid.Uint64().Draw(t, "time"),
			Port: rapid.Uint16Range(1, 65535).Draw(t, "port"),
		}
		switch rapid.IntRange(0, 2).Draw(t, "family") {
		case 1:
			r.Source = netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "v4")))
		case 2:
			r.Source = netip.AddrFrom16([16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "v6"))).Unmap()
		}
		if r.Source.IsValid() && r.Source.IsUnspecified() {
			r.Source = netip.Addr{}
		}
		if rapid.Bool().Draw(t, "with source port") {
			r.SourcePort = rapid.Uint16Range(1, 65535).Draw(t, "source port")
		}
		return r
	})
}

// TestPropertyModernRoundTrip: every knock a knocker builds is 178 bytes
// and opens, under the doorman's key, to the knocker's public key and the
// request it was built from (MODERN-12.3/1, MODERN-12.5, MODERN-12.7,
// MODERN-12.8/2).
func TestPropertyModernRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		client := genPrivateKey("client").Draw(t, "client")
		server := genPrivateKey("server").Draw(t, "server")
		req := genRequest().Draw(t, "request")
		d, err := SealKnock(nil, &client, server.Public(), &req, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != ModernKnockLen {
			t.Fatalf("%d bytes", len(d))
		}
		k, err := NewOpener(&server).Open(d)
		if err != nil {
			t.Fatal(err)
		}
		if k.Client != client.Public() || k.Request != req {
			t.Fatalf("opened %+v, sent %+v from %v", k, req, client.Public())
		}
	})
}

// TestPropertyModernTamper: changing any bit of a knock makes it refused,
// by the cheap checks when the change is not paired with a new mac1, and
// by the AEAD when it is (MODERN-12.5, MODERN-12.6/2).
func TestPropertyModernTamper(t *testing.T) {
	client, server := testKeys(t)
	o := NewOpener(&server)
	rapid.Check(t, func(t *rapid.T) {
		req := genRequest().Draw(t, "request")
		d, err := SealKnock(nil, &client, server.Public(), &req, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		i := rapid.IntRange(0, ModernKnockLen-1).Draw(t, "byte")
		bit := byte(1) << rapid.IntRange(0, 7).Draw(t, "bit")
		bad := bytes.Clone(d)
		bad[i] ^= bit
		if o.Precheck(bad) == nil {
			t.Fatalf("byte %d bit %#x: passed Precheck", i, bit)
		}
		if i >= offEphemeral && i < offMAC1 {
			if _, err := o.Open(remacFor(o, bad)); err != ErrDecrypt {
				t.Fatalf("byte %d bit %#x with mac1 redone: %v, want ErrDecrypt", i, bit, err)
			}
		}
	})
}

// TestPropertyRequestCanonical: encoding then decoding a request gives it
// back (MODERN-12.7).
func TestPropertyRequestCanonical(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		req := genRequest().Draw(t, "request")
		var p [ModernRequestLen]byte
		if err := req.encode(&p); err != nil {
			t.Fatal(err)
		}
		var got Request
		if err := decodeRequest(p[:], &got); err != nil || got != req {
			t.Fatalf("%+v -> %x -> %+v (%v)", req, p, got, err)
		}
	})
}
