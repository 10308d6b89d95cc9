package protocol

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

type vectorFile struct {
	Valid []struct {
		Name, Requirement, Secret, Group, Payload string
		Port                                      uint16
		Tag                                       uint32
	}
	Lenient []struct {
		Name, Requirement, Payload string
		SameAs                     string `json:"same_as"`
	}
	Reject []struct {
		Name, Requirement, Field string
		PayloadHex               string `json:"payload_hex"`
	}
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	b, err := os.ReadFile("../spec/vectors/classic.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("classic.json: %v", err)
	}
	if len(v.Valid) == 0 || len(v.Reject) == 0 || len(v.Lenient) == 0 {
		t.Fatal("classic.json has an empty section")
	}
	return v
}

// TestVectorBuild checks that NewKnock produces each valid vector's payload
// byte for byte (CLASSIC-2.1, CLASSIC-3.1).
func TestVectorBuild(t *testing.T) {
	for _, v := range loadVectors(t).Valid {
		t.Run(v.Name, func(t *testing.T) {
			k, err := NewKnock(v.Port, v.Group, v.Tag, []byte(v.Secret))
			if err != nil {
				t.Fatalf("%s: NewKnock: %v", v.Requirement, err)
			}
			if got := k.String(); got != v.Payload {
				t.Fatalf("%s: payload\n got %q\nwant %q", v.Requirement, got, v.Payload)
			}
		})
	}
}

// TestVectorParseVerify checks that each valid vector parses to its fields
// and verifies with its secret and with no other (CLASSIC-2.2, CLASSIC-2.2/3:
// every knock within the limits, including 32-character groups, is
// accepted; CLASSIC-4.6).
func TestVectorParseVerify(t *testing.T) {
	for _, v := range loadVectors(t).Valid {
		t.Run(v.Name, func(t *testing.T) {
			var k Knock
			if err := ParseKnock([]byte(v.Payload), &k); err != nil {
				t.Fatalf("%s: ParseKnock: %v", v.Requirement, err)
			}
			if k.Port != v.Port || k.GroupString() != v.Group || k.Tag != v.Tag {
				t.Fatalf("parsed %d %q %d, want %d %q %d", k.Port, k.GroupString(), k.Tag, v.Port, v.Group, v.Tag)
			}
			if !k.VerifyMAC([]byte(v.Secret)) {
				t.Fatal("MAC does not verify with the vector's secret")
			}
			if k.VerifyMAC([]byte(v.Secret + "x")) {
				t.Fatal("MAC verifies with a different secret")
			}
		})
	}
}

// TestVectorLenient checks the payloads a daemon must accept although no
// conforming client sends them (CLASSIC-2.4, CLASSIC-2.5).
func TestVectorLenient(t *testing.T) {
	v := loadVectors(t)
	byName := map[string]string{}
	for _, x := range v.Valid {
		byName[x.Name] = x.Payload
	}
	for _, l := range v.Lenient {
		t.Run(l.Name, func(t *testing.T) {
			var got, want Knock
			if err := ParseKnock([]byte(l.Payload), &got); err != nil {
				t.Fatalf("%s: %v", l.Requirement, err)
			}
			if err := ParseKnock([]byte(byName[l.SameAs]), &want); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("%s: parsed %v, want %v", l.Requirement, got.String(), want.String())
			}
		})
	}
}

// TestVectorReject checks that each malformed payload is refused with an
// error naming the expected field (CLASSIC-2.2/2: fields outside the limits
// are rejected; CLASSIC-2.1/2, CLASSIC-2.3, CLASSIC-2.4, CLASSIC-2.6).
func TestVectorReject(t *testing.T) {
	for _, v := range loadVectors(t).Reject {
		t.Run(v.Name, func(t *testing.T) {
			p, err := hex.DecodeString(v.PayloadHex)
			if err != nil {
				t.Fatal(err)
			}
			var k Knock
			err = ParseKnock(p, &k)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("%s: ParseKnock(%q) = %v, want a *FieldError", v.Requirement, p, err)
			}
			if string(fe.Field) != v.Field {
				t.Fatalf("%s: ParseKnock(%q) blames %q (%v), want %q", v.Requirement, p, fe.Field, err, v.Field)
			}
		})
	}
}
