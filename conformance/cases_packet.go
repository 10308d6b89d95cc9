//go:build linux

package conformance

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Cases for sections 2 (the packet) and 4.3–4.4 (frames).
func packetCases() []*Case {
	return []*Case{
		{ID: "2.1/reject-vectors", Requirement: "CLASSIC-2.1/2", Level: "MUST", Target: TargetDaemon,
			Description: "every 'reject' vector of classic.json (malformed fields, lengths, terminators) opens nothing",
			Timeout:     90 * time.Second, Run: runRejectVectors},
		{ID: "2.2/over-long-fields", Requirement: "CLASSIC-2.2/2", Level: "MUST", Target: TargetDaemon,
			Description: "a knock with a 6-digit port, an 11-digit tag or a 33-digit hmac, each correctly signed, opens nothing",
			Run:         runOverLong},
		{ID: "2.2/group-32-chars", Requirement: "CLASSIC-2.2/3", Level: "MUST", Target: TargetDaemon,
			Description: "the 'group-32-chars' vector (a 32-character group, 82-byte payload) opens its port",
			Run:         runGroup32},
		{ID: "2.4/final-newline", Requirement: "CLASSIC-2.4", Level: "MUST", Target: TargetDaemon,
			Description: "the 'final-newline' lenient vector is accepted", Run: lenient("final-newline")},
		{ID: "2.5/upper-case-hex", Requirement: "CLASSIC-2.5", Level: "MUST", Target: TargetDaemon,
			Description: "the 'upper-case-hex' lenient vector is accepted", Run: lenient("upper-case-hex")},
		{ID: "4.3/ip-options", Requirement: "CLASSIC-4.3", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock in an IPv4 datagram with IP options (IHL 6) is dropped; the same without options opens",
			Run:         rawFrameCase(rawIPv4{Options: []byte{1, 1, 1, 0}})},
		{ID: "4.3/fragment-mf", Requirement: "CLASSIC-4.3", Level: "MUST", Target: TargetDaemon,
			Description: "a first fragment (MF set, offset 0) holding a whole valid knock is dropped (0.81 accepted it)",
			Run:         rawFrameCase(rawIPv4{MF: true})},
		{ID: "4.3/fragment-offset", Requirement: "CLASSIC-4.3", Level: "MUST", Target: TargetDaemon,
			Description: "a last fragment (offset 8 bytes) that looks like a valid knock is dropped",
			Run:         rawFrameCase(rawIPv4{FragOffset: 1})},
		{ID: "4.4/wrong-destination-port", Requirement: "CLASSIC-4.4", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock sent to another UDP port than the knock port opens nothing",
			Run: func(e *Env) error {
				if _, err := udpSend(e.Topo.Client, e.server(), knockPort+1, []byte(knockFor(portA))); err != nil {
					return err
				}
				time.Sleep(settle)
				if err := e.expectClosed(e.Topo.Client, portA, "knock sent to the wrong UDP port"); err != nil {
					return err
				}
				return e.control(portA)
			}},
	}
}

func runRejectVectors(e *Env) error {
	if e.Vectors == nil {
		return Skipf("spec/vectors/classic.json not found")
	}
	for _, v := range e.Vectors.Reject {
		if _, err := e.knock(e.Topo.Client, string(v.Bytes())); err != nil {
			return err
		}
	}
	time.Sleep(settle)
	if err := e.expectClosed(e.Topo.Client, portA, "after all reject vectors"); err == nil {
		return e.control(portA)
	}
	// One of them opened the door: find which, one daemon run each.
	var bad []string
	for _, v := range e.Vectors.Reject {
		if err := e.StopDaemon(); err != nil {
			return err
		}
		if err := e.StartDaemon(true); err != nil {
			return err
		}
		if err := e.knockSettle(e.Topo.Client, string(v.Bytes())); err != nil {
			return err
		}
		if e.expectClosed(e.Topo.Client, portA, v.Name) != nil {
			bad = append(bad, v.Name)
		}
	}
	return mismatch("every reject vector refused", "port %d opened by %s", portA, strings.Join(bad, ", "))
}

func runOverLong(e *Env) error {
	tag := randomTag()
	head6 := fmt.Sprintf("0%d alice %010d", portA, tag)       // 6-digit port
	head11 := fmt.Sprintf("%d alice 0%010d", portA, tag)      // 11-digit tag
	head := fmt.Sprintf("%d alice %010d", portA, randomTag()) // valid fields
	payloads := map[string]string{
		"6-digit port":  head6 + " " + macHex(head6, secretA),
		"11-digit tag":  head11 + " " + macHex(head11, secretA),
		"33-digit hmac": head + " " + macHex(head, secretA) + "0",
	}
	for name, p := range payloads {
		if err := e.knockSettle(e.Topo.Client, p); err != nil {
			return err
		}
		if err := e.expectClosed(e.Topo.Client, portA, name); err != nil {
			return err
		}
	}
	return e.control(portA)
}

func findVector(vs []Vector, name string) (Vector, bool) {
	for _, v := range vs {
		if v.Name == name {
			return v, true
		}
	}
	return Vector{}, false
}

func runGroup32(e *Env) error {
	if e.Vectors == nil {
		return Skipf("spec/vectors/classic.json not found")
	}
	v, ok := findVector(e.Vectors.Valid, "group-32-chars")
	if !ok || v.Group != group32 || v.Port != portMax {
		return Skipf("vector group-32-chars missing or changed")
	}
	if err := e.knockSettle(e.Topo.Client, v.Payload); err != nil {
		return err
	}
	return e.expectOpen(e.Topo.Client, portMax, "32-character group "+group32)
}

func lenient(name string) func(*Env) error {
	return func(e *Env) error {
		if e.Vectors == nil {
			return Skipf("spec/vectors/classic.json not found")
		}
		v, ok := findVector(e.Vectors.Lenient, name)
		if !ok {
			return Skipf("lenient vector %s not in classic.json", name)
		}
		base, ok := findVector(e.Vectors.Valid, v.SameAs)
		if !ok || base.Port != portA || base.Group != "alice" || base.Secret != secretA {
			return Skipf("vector %s: base %s is not alice/%d", name, v.SameAs, portA)
		}
		if err := e.knockSettle(e.Topo.Client, string(v.Bytes())); err != nil {
			return err
		}
		return e.expectOpen(e.Topo.Client, portA, "lenient vector "+name)
	}
}

// rawFrameCase sends a valid knock in a hand-built datagram shaped by tmpl
// and expects it dropped; then sends another valid knock through the same
// raw path without the defect and expects it to open the door, which proves
// the hand-built datagram was otherwise a good knock.
func rawFrameCase(tmpl rawIPv4) func(*Env) error {
	return func(e *Env) error {
		c := e.Topo.Client
		base := func(payload string) rawIPv4 {
			return rawIPv4{Src: c.Addr, Dst: e.server(), SrcPort: uint16(20000 + rand.IntN(30000)),
				DstPort: knockPort, Payload: []byte(payload)}
		}
		bad := base(knockFor(portA))
		bad.Options, bad.MF, bad.FragOffset = tmpl.Options, tmpl.MF, tmpl.FragOffset
		if err := rawSend(c, bad); err != nil {
			return err
		}
		time.Sleep(settle)
		if err := e.expectClosed(c, portA, "knock in a defective IPv4 datagram"); err != nil {
			return err
		}
		if err := rawSend(c, base(knockFor(portA))); err != nil {
			return err
		}
		time.Sleep(settle)
		if err := e.expectOpen(c, portA, "control: same raw path, no defect"); err != nil {
			return fmt.Errorf("control: %w", err)
		}
		return nil
	}
}
