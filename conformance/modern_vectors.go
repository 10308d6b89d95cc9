//go:build linux

package conformance

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/crypto/blake2s"
)

// ModernVectors is what the suite reads of spec/vectors/modern.json.
type ModernVectors struct {
	Keys map[string]struct {
		Private string `json:"private"`
		Public  string `json:"public"`
	} `json:"keys"`
	Valid []struct {
		Name             string `json:"name"`
		Client           string `json:"client"`
		Server           string `json:"server"`
		EphemeralPrivate string `json:"ephemeral_private"`
		RequestHex       string `json:"request_hex"`
		DatagramHex      string `json:"datagram_hex"`
	} `json:"valid"`
	Reject []ModernReject `json:"reject"`
}

// ModernReject is one "reject" vector: a datagram a doorman must refuse,
// and the check that refuses it.
type ModernReject struct {
	Name        string `json:"name"`
	Requirement string `json:"requirement"`
	DatagramHex string `json:"datagram_hex"`
	Error       string `json:"error"`
}

// LoadModernVectors reads a modern.json file.
func LoadModernVectors(path string) (*ModernVectors, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v ModernVectors
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &v, nil
}

// rejectParams are the inputs a reject recipe rebuilds its vector from:
// the vectors' own (alice, server-a, server-b, fixed ephemerals, 2026-01-01,
// port 22, 198.18.0.7) to check the recipe, the suite's (a guest's key,
// the doorman's, a fresh time, the knocking client's address) to send it.
type rejectParams struct {
	client keyPair
	server [32]byte // the doorman under test
	other  [32]byte // another doorman
	eph    func(label string) [32]byte
	time   uint64
	port   uint16
	src    netip.Addr // an IPv4 address, stated as the source
}

// vectorEphemeral is gen_modern.py's ephemeral(label).
func vectorEphemeral(label string) [32]byte {
	return blake2s.Sum256([]byte("doorman test vector ephemeral: " + label))
}

func (p rejectParams) knock(server, mac1For [32]byte, req modernRequest, label string, mod func(*sealSpec)) []byte {
	sp := sealSpec{client: p.client, server: server, ephemeral: p.eph(label), request: req.bytes()}
	if mod != nil {
		mod(&sp)
	}
	d, err := sp.seal(mac1For)
	if err != nil {
		panic("conformance: reject recipe: " + err.Error()) // the recipes override every DH that could fail
	}
	return d
}

// plain is gen_modern.py's plain0: the base request.
func (p rejectParams) plain() modernRequest { return newRequest(p.time, p.port, p.src, 0) }

// good is the valid knock the form, mac1 and Noise vectors are mutations of.
func (p rejectParams) good() []byte {
	return p.knock(p.server, p.server, p.plain(), "ipv4-stated", nil)
}

// sealed seals a (malformed) request as the guest, validly.
func (p rejectParams) sealed(req modernRequest, label string) []byte {
	return p.knock(p.server, p.server, req, label, nil)
}

// noise builds a knock whose Noise message is changed by mod, with mac1
// for this doorman.
func (p rejectParams) noise(mod func(*sealSpec)) []byte {
	return p.knock(p.server, p.server, p.plain(), "ipv4-stated", mod)
}

func flip(d []byte, i int, bit byte) []byte {
	out := append([]byte(nil), d...)
	out[i] ^= bit
	return out
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// src4 is the stated source's 4 bytes.
func (p rejectParams) src4() [4]byte { return p.src.As4() }

// rejectRecipes rebuild each reject vector of modern.json as
// spec/vectors/gen_modern.py builds it, from rejectParams: sent with the
// suite's keys and a fresh time, a vector keeps its defect and nothing
// else stands in its way (an old time would be refused for clock skew
// whatever the defect). TestModernRejectRecipes checks that each rebuilds
// its vector byte for byte from the vectors' inputs.
var rejectRecipes = map[string]func(p rejectParams) []byte{
	"empty":                  func(p rejectParams) []byte { return []byte{} },
	"magic-only":             func(p rejectParams) []byte { return []byte{modernMagic} },
	"one-byte-short":         func(p rejectParams) []byte { g := p.good(); return g[:len(g)-1] },
	"one-byte-long":          func(p rejectParams) []byte { return append(p.good(), 0) },
	"max-udp-prefilter-size": func(p rejectParams) []byte { return append(p.good(), make([]byte, 255-modernKnockLen)...) },
	"type-two-short":         func(p rejectParams) []byte { g := p.good(); return cat(g[:1], []byte{2}, g[2:100]) },
	"wrong-magic":            func(p rejectParams) []byte { return remac(cat([]byte{0xd3}, p.good()[1:]), p.server) },
	"classic-first-byte":     func(p rejectParams) []byte { return remac(cat([]byte("2"), p.good()[1:]), p.server) },
	"type-zero":              func(p rejectParams) []byte { g := p.good(); return remac(cat(g[:1], []byte{0}, g[2:]), p.server) },
	"type-two":               func(p rejectParams) []byte { g := p.good(); return remac(cat(g[:1], []byte{2}, g[2:]), p.server) },

	"tamper-ephemeral":  func(p rejectParams) []byte { return flip(p.good(), offEphemeral, 0x01) },
	"tamper-static":     func(p rejectParams) []byte { return flip(p.good(), offStatic+5, 0x01) },
	"tamper-request":    func(p rejectParams) []byte { return flip(p.good(), offRequest+10, 0x01) },
	"tamper-mac1-first": func(p rejectParams) []byte { return flip(p.good(), offMAC1, 0x01) },
	"tamper-mac1-last":  func(p rejectParams) []byte { return flip(p.good(), modernKnockLen-1, 0x80) },
	"mac1-zero":         func(p rejectParams) []byte { return cat(p.good()[:offMAC1], make([]byte, 16)) },
	"made-for-server-b": func(p rejectParams) []byte { return p.knock(p.other, p.other, p.plain(), "ipv4-stated", nil) },

	"tamper-ephemeral-remac":   func(p rejectParams) []byte { return remac(flip(p.good(), offEphemeral+31, 0x40), p.server) },
	"tamper-static-remac":      func(p rejectParams) []byte { return remac(flip(p.good(), offStatic, 0x01), p.server) },
	"tamper-static-tag-remac":  func(p rejectParams) []byte { return remac(flip(p.good(), offRequest-1, 0x01), p.server) },
	"tamper-request-remac":     func(p rejectParams) []byte { return remac(flip(p.good(), offRequest+20, 0x01), p.server) },
	"tamper-request-tag-remac": func(p rejectParams) []byte { return remac(flip(p.good(), offMAC1-1, 0x01), p.server) },
	"encrypted-to-server-b-mac1-for-a": func(p rejectParams) []byte {
		return p.knock(p.other, p.server, p.plain(), "ipv4-stated", nil)
	},
	"prologue-type-two": func(p rejectParams) []byte {
		return p.noise(func(s *sealSpec) { s.prologue = []byte(prologueLabel + "\xd2\x02") })
	},
	"prologue-other-label": func(p rejectParams) []byte {
		return p.noise(func(s *sealSpec) { s.prologue = []byte("doorman modern knock v2\xd2\x01") })
	},
	"ephemeral-zero": func(p rejectParams) []byte {
		return p.noise(func(s *sealSpec) { s.ephPub, s.es = &[32]byte{}, &[32]byte{} })
	},
	"ephemeral-small-order": func(p rejectParams) []byte {
		return p.noise(func(s *sealSpec) { s.ephPub, s.es = &smallOrderPoint, &[32]byte{} })
	},
	"static-zero": func(p rejectParams) []byte {
		return p.noise(func(s *sealSpec) { s.clientPub, s.ss = &[32]byte{}, &[32]byte{} })
	},
	"static-small-order": func(p rejectParams) []byte {
		return p.noise(func(s *sealSpec) { s.clientPub, s.ss = &smallOrderPoint, &[32]byte{} })
	},

	"port-zero": func(p rejectParams) []byte { return p.sealed(newRequest(p.time, 0, p.src, 0), "r1") },
	"flags-unknown-bit": func(p rejectParams) []byte {
		r := p.plain()
		r.Flags = 0x02
		return p.sealed(r, "r2")
	},
	"flags-high-bit": func(p rejectParams) []byte {
		r := newRequest(p.time, p.port, netip.Addr{}, 7)
		r.Flags = 0x81
		return p.sealed(r, "r3")
	},
	"source-port-flag-without-port": func(p rejectParams) []byte {
		r := p.plain()
		r.Flags = 0x01
		return p.sealed(r, "r4")
	},
	"source-port-without-flag": func(p rejectParams) []byte {
		r := newRequest(p.time, p.port, p.src, 1234)
		r.Flags = 0
		return p.sealed(r, "r5")
	},
	"source-family-five": func(p rejectParams) []byte {
		r := p.plain()
		r.Family = 5
		return p.sealed(r, "r6")
	},
	"source-ipv4-tail-set": func(p rejectParams) []byte {
		r := p.plain()
		r.Addr[15] = 1
		return p.sealed(r, "r7")
	},
	"as-seen-with-address": func(p rejectParams) []byte {
		r := p.plain()
		r.Family = 0
		return p.sealed(r, "r8")
	},
	"source-ipv4-mapped": func(p rejectParams) []byte {
		r := p.plain()
		r.Family = 6
		r.Addr = netip.AddrFrom4(p.src4()).As16() // ::ffff:a.b.c.d
		return p.sealed(r, "r9")
	},
	"source-ipv4-unspecified": func(p rejectParams) []byte {
		return p.sealed(newRequest(p.time, p.port, netip.IPv4Unspecified(), 0), "r10")
	},
	"source-ipv6-unspecified": func(p rejectParams) []byte {
		return p.sealed(newRequest(p.time, p.port, netip.IPv6Unspecified(), 0), "r11")
	},
	"forward-family-ipv4": func(p rejectParams) []byte {
		r := p.plain()
		r.FwdFamily, r.FwdPort = 4, 22
		copy(r.FwdAddr[:], []byte{198, 18, 9, 9})
		return p.sealed(r, "r12")
	},
	"forward-address-without-family": func(p rejectParams) []byte {
		r := p.plain()
		r.FwdAddr[15] = 1
		return p.sealed(r, "r13")
	},
	"forward-port-without-family": func(p rejectParams) []byte {
		r := p.plain()
		r.FwdPort = 80
		return p.sealed(r, "r14")
	},
	"padding-first-byte": func(p rejectParams) []byte {
		r := p.plain()
		r.Padding[0] = 1
		return p.sealed(r, "r15")
	},
	"padding-last-byte": func(p rejectParams) []byte {
		r := p.plain()
		r.Padding[14] = 0x80
		return p.sealed(r, "r16")
	},
}

// vectorParams are the inputs gen_modern.py builds its reject vectors from.
func (v *ModernVectors) vectorParams() (rejectParams, error) {
	key := func(name string, private bool) ([32]byte, error) {
		k, ok := v.Keys[name]
		if !ok {
			return [32]byte{}, fmt.Errorf("modern.json: no key %q", name)
		}
		if private {
			return parseKeyText(k.Private)
		}
		return parseKeyText(k.Public)
	}
	alice, err := key("alice", true)
	if err != nil {
		return rejectParams{}, err
	}
	a, err := key("server-a", false)
	if err != nil {
		return rejectParams{}, err
	}
	b, err := key("server-b", false)
	if err != nil {
		return rejectParams{}, err
	}
	return rejectParams{client: keyPairFrom(alice), server: a, other: b, eph: vectorEphemeral,
		time: 1767225600 * 1e9, port: 22, src: netip.MustParseAddr("198.18.0.7")}, nil
}

// datagram returns a reject vector's bytes.
func (v ModernReject) datagram() ([]byte, error) { return hex.DecodeString(v.DatagramHex) }
