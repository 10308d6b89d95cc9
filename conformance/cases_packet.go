//go:build linux

package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cases for section 2: the packet.
func packetCases() []*Case {
	return []*Case{
		{ID: "2.1/reject-vectors", Requirement: "CLASSIC-2.1/2", Level: "MUST", Target: TargetDaemon,
			Description: "every 'reject' vector of classic.json (malformed fields, lengths, terminators, a non-digit first byte), each rebuilt with a fresh tag and its own hmac, opens nothing; a failure names the vectors",
			Also:        []string{"CLASSIC-2.1", "CLASSIC-2.2/2", "CLASSIC-2.3", "CLASSIC-2.4", "CLASSIC-2.6", "CLASSIC-4.8"},
			Timeout:     90 * time.Second, Run: runRejectVectors},
		{ID: "2.2/over-long-fields", Requirement: "CLASSIC-2.2/2", Level: "MUST", Target: TargetDaemon,
			Description: "a knock with a 6-digit port, an 11-digit tag or a 33-digit hmac, each correctly signed, opens nothing",
			Run:         runOverLong},
		{ID: "2.2/fields-at-limits", Requirement: "CLASSIC-2.2/3", Level: "MUST NOT", Target: TargetDaemon,
			Description: "knocks whose fields are at their limits open their doors: tag 0000000000, tag 4294967295, port 1 with a group of every special character and a 255-character secret",
			Also:        []string{"CLASSIC-9.3"},
			Run:         runFieldsAtLimits},
		{ID: "2.2/group-32-chars", Requirement: "CLASSIC-2.2/3", Level: "MUST NOT", Target: TargetDaemon,
			Description: "the 'group-32-chars' vector (a 32-character group, 82-byte payload) opens its port",
			Run:         runGroup32},
		{ID: "2.4/final-newline", Requirement: "CLASSIC-2.4", Level: "MUST", Target: TargetDaemon,
			Description: "the 'final-newline' lenient vector is accepted", Run: lenient("final-newline")},
		{ID: "2.5/upper-case-hex", Requirement: "CLASSIC-2.5", Level: "MUST", Target: TargetDaemon,
			Description: "the 'upper-case-hex' lenient vector is accepted", Run: lenient("upper-case-hex")},
	}
}

// rejectVectorBase is the valid vector the reject vectors are mutations of.
const rejectVectorBase = "original-client-capture"

// ownHMAC rebuilds a reject vector around a fresh knock for port (four
// digits, like the base's). The reject vectors are mutations of one valid
// knock and share its tag and hmac: sent as they are, one that a daemon
// wrongly accepted would make every later one a replay and hide it. Here
// every occurrence of the base tag becomes a fresh tag, the base port's
// digits become port's, and the base hmac (or its 31-digit prefix)
// becomes the hmac of "port group freshtag" with the same secret, so each
// vector keeps its defect, a lenient parser would still find its hmac
// right, and each has a digest of its own. It also returns that
// canonical knock: the same digest in a valid payload.
func ownHMAC(p []byte, base Vector, port int) (payload []byte, canonical string) {
	baseTag := fmt.Sprintf("%010d", base.Tag)
	baseMAC := base.Payload[strings.LastIndexByte(base.Payload, ' ')+1:]
	tag := fmt.Sprintf("%010d", randomTag())
	head := fmt.Sprintf("%d %s %s", port, base.Group, tag)
	mac := macHex(head, base.Secret)
	p = bytes.ReplaceAll(p, []byte(baseTag), []byte(tag))
	p = bytes.ReplaceAll(p, []byte(strconv.Itoa(base.Port)), []byte(strconv.Itoa(port)))
	p = bytes.ReplaceAll(p, []byte(baseMAC), []byte(mac))
	p = bytes.ReplaceAll(p, []byte(baseMAC[:31]), []byte(mac[:31]))
	return p, head + " " + mac
}

func runRejectVectors(e *Env) error {
	if e.Vectors == nil {
		return Skipf("spec/vectors/classic.json not found")
	}
	base, ok := findVector(e.Vectors.Valid, rejectVectorBase)
	if !ok || base.Port != portA || base.Group != "alice" || base.Secret != secretA {
		return Skipf("vector %s missing or not alice/%d", rejectVectorBase, portA)
	}
	for _, v := range e.Vectors.Reject {
		p, _ := ownHMAC(v.Bytes(), base, portA)
		if _, err := e.knock(e.Topo.Client, string(p)); err != nil {
			return err
		}
	}
	err := e.closedAndControl(e.Topo.Client, portA, "after all reject vectors")
	if err == nil || strings.HasPrefix(err.Error(), "control:") {
		return err
	}
	// One or more opened the door. Name them: each again, rebuilt for a
	// port of its own, a round of as many as there are probe ports, and
	// every port probed at once.
	var bad []string
	rs := e.Vectors.Reject
	for len(rs) > 0 {
		round := rs[:min(len(rs), len(probePorts))]
		rs = rs[len(round):]
		for i, v := range round {
			p, _ := ownHMAC(v.Bytes(), base, probePorts[i])
			if _, err := e.knock(e.Topo.Client, string(p)); err != nil {
				return err
			}
		}
		time.Sleep(settle)
		opened := make([]bool, len(round))
		var wg sync.WaitGroup
		for i := range round {
			wg.Add(1)
			go func() {
				defer wg.Done()
				opened[i] = e.expectClosed(e.Topo.Client, probePorts[i], "") != nil
			}()
		}
		wg.Wait()
		for i, v := range round {
			if opened[i] {
				bad = append(bad, v.Name)
			}
		}
	}
	return mismatch("every reject vector refused (each sent with its own hmac)",
		"port %d opened; sent again one by one, each for a port of its own, these opened theirs: %s",
		portA, strings.Join(bad, ", "))
}

func runOverLong(e *Env) error {
	payloads := func() map[string]string {
		tag := randomTag()
		head6 := fmt.Sprintf("0%d alice %010d", portA, tag)       // 6-digit port
		head11 := fmt.Sprintf("%d alice 0%010d", portA, tag)      // 11-digit tag
		head := fmt.Sprintf("%d alice %010d", portA, randomTag()) // valid fields
		return map[string]string{
			"6-digit port":  head6 + " " + macHex(head6, secretA),
			"11-digit tag":  head11 + " " + macHex(head11, secretA),
			"33-digit hmac": head + " " + macHex(head, secretA) + "0",
		}
	}
	for _, p := range payloads() {
		if _, err := e.knock(e.Topo.Client, p); err != nil {
			return err
		}
	}
	err := e.closedAndControl(e.Topo.Client, portA, "after a 6-digit port, an 11-digit tag and a 33-digit hmac")
	if err == nil || strings.HasPrefix(err.Error(), "control:") {
		return err
	}
	// Name the culprit: each alone, after the doors expired.
	time.Sleep(time.Duration(waitForSec+1) * time.Second)
	var bad []string
	for name, p := range payloads() {
		if err := e.knockSettle(e.Topo.Client, p); err != nil {
			return err
		}
		if e.expectClosed(e.Topo.Client, portA, name) != nil {
			bad = append(bad, name)
		}
	}
	return mismatch("over-long fields refused", "port %d opened by: %s", portA, strings.Join(bad, ", "))
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

func runFieldsAtLimits(e *Env) error {
	t := e.Topo
	checks := []struct {
		h     Host
		knock string
		port  int
		why   string
	}{
		{t.Client, classicPayload(portA, "alice", 0, secretA), portA, "tag 0000000000"},
		{t.Client2, classicPayload(portA, "alice", 4294967295, secretA), portA, "tag 4294967295"},
		{t.Client, classicPayload(portMin, groupSpecials, randomTag(), secret255), portMin,
			"port 1, group " + groupSpecials + ", 255-character secret"},
	}
	for _, c := range checks {
		if _, err := e.knock(c.h, c.knock); err != nil {
			return err
		}
	}
	time.Sleep(settle)
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = e.expectOpen(c.h, c.port, c.why) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}
