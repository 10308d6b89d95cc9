package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"golang.org/x/crypto/blake2s"
)

// fuzzOpener seeds f with the vectors' datagrams and opens with their
// server-a key, so that the seeds get past mac1.
func fuzzOpener(f *testing.F) *Opener {
	b, err := os.ReadFile(modernVectorsPath)
	if err != nil {
		f.Fatal(err)
	}
	var v modernVectors
	if err := json.Unmarshal(b, &v); err != nil {
		f.Fatal(err)
	}
	k, err := ParsePrivateKey(v.Keys["server-a"].Private)
	if err != nil {
		f.Fatal(err)
	}
	for _, x := range v.Valid {
		d, _ := hex.DecodeString(x.DatagramHex)
		f.Add(d)
	}
	for _, x := range v.Reject {
		d, _ := hex.DecodeString(x.DatagramHex)
		f.Add(d)
	}
	return NewOpener(&k)
}

// remacFor recomputes a datagram's mac1 for o's key, so the fuzzer's
// mutations reach the Noise stage and the request decoder instead of all
// stopping at mac1.
func remacFor(o *Opener, p []byte) []byte {
	q := bytes.Clone(p)
	h, _ := blake2s.New128(o.mac1Key[:])
	h.Write(q[:offMAC1])
	return h.Sum(q[:offMAC1])
}

// FuzzOpenModern: no datagram panics the modern verifier (CLASSIC-4.8,
// MODERN-12.19), Precheck and Open agree on everything before the Noise
// stage, and whatever Open accepts is a knock of the fixed size whose
// request re-encodes to itself.
func FuzzOpenModern(f *testing.F) {
	o := fuzzOpener(f)
	f.Add([]byte{})
	f.Add([]byte{ModernMagic})
	f.Fuzz(func(t *testing.T, p []byte) {
		check := func(p []byte) {
			pre := o.Precheck(p)
			k, err := o.Open(p)
			if pre != nil {
				if err != pre {
					t.Fatalf("Precheck %v but Open %v", pre, err)
				}
				return
			}
			if err != nil {
				return
			}
			if len(p) != ModernKnockLen || k.Port == 0 || k.Client.Check() != nil {
				t.Fatalf("accepted %x as %+v", p, k)
			}
			var enc [ModernRequestLen]byte
			if err := k.Request.encode(&enc); err != nil {
				t.Fatalf("accepted request %+v does not encode: %v", k.Request, err)
			}
		}
		check(p)
		if len(p) == ModernKnockLen {
			check(remacFor(o, p))
		}
	})
}

// FuzzModernRequest: the request decoder is strict: whatever 64 bytes it
// accepts are the one encoding of the request it returns (MODERN-12.8/1).
func FuzzModernRequest(f *testing.F) {
	var seed [ModernRequestLen]byte
	r := Request{Time: 1767225600e9, Port: 22, SourcePort: 5}
	r.encode(&seed)
	f.Add(seed[:])
	seed[reqSrcFamily] = familyIPv6
	seed[reqSrcAddr] = 0x20
	f.Add(seed[:])
	f.Add(make([]byte, ModernRequestLen))
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) != ModernRequestLen {
			return
		}
		var r Request
		if err := decodeRequest(p, &r); err != nil {
			return
		}
		var again [ModernRequestLen]byte
		if err := r.encode(&again); err != nil {
			t.Fatalf("decoded %+v from %x, which does not encode: %v", r, p, err)
		}
		if !bytes.Equal(again[:], p) {
			t.Fatalf("decoded %x as %+v, which encodes as %x", p, r, again)
		}
	})
}

// FuzzParseKeyFileText: no key file text panics the parser; whatever it
// accepts holds exactly one key whose text form is in the file
// (MODERN-12.2).
func FuzzParseKeyFileText(f *testing.F) {
	f.Add([]byte(rfc7748AlicePriv + "\n"))
	f.Add([]byte("# k\n\n  " + rfc7748AlicePub + " \r\n# end"))
	f.Add([]byte(rfc7748AlicePriv + "\n" + rfc7748AlicePub))
	f.Add([]byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeyFileText(data)
		if err != nil {
			if _, ok := err.(*KeyFileError); !ok {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		if !bytes.Contains(data, []byte(PublicKey(k).String())) {
			t.Fatalf("accepted a key not written in the file: %x", k)
		}
		if _, err := ParsePublicKey(PublicKey(k).String()); err != nil && err != ErrWeakKey {
			t.Fatalf("accepted key does not parse back: %v", err)
		}
	})
}
