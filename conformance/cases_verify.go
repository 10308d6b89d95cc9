//go:build linux

package conformance

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Cases for section 4: verification, silence, robustness.
func verifyCases() []*Case {
	return []*Case{
		{ID: "4.1/bad-mac", Requirement: "CLASSIC-4.1", Level: "MUST", Target: TargetDaemon,
			Description: "a well-formed knock for alice signed with a wrong secret opens nothing",
			Run: func(e *Env) error {
				return e.rejected(e.Topo.Client, classicPayload(portA, "alice", randomTag(), "wrongSecret"), portA, "incorrect secret")
			}},
		{ID: "4.1/unknown-group", Requirement: "CLASSIC-4.1", Level: "MUST", Target: TargetDaemon,
			Description: "a signed knock for a group not in the guest list opens nothing",
			Run: func(e *Env) error {
				return e.rejected(e.Topo.Client, classicPayload(portA, "mallory", randomTag(), secretA), portA, "unknown guest")
			}},
		{ID: "4.1/port-not-allowed", Requirement: "CLASSIC-4.1", Level: "MUST", Target: TargetDaemon,
			Description: "alice, correctly signed, asks for a port only another guest may open: nothing opens",
			Run: func(e *Env) error {
				if err := e.knockSettle(e.Topo.Client, classicPayload(portOther, "alice", randomTag(), secretA)); err != nil {
					return err
				}
				if err := e.expectClosed(e.Topo.Client, portOther, "not registered for port"); err != nil {
					return err
				}
				return e.control(portA)
			}},
		{ID: "4.1/address-not-allowed", Requirement: "CLASSIC-4.1", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock from a host outside alice's address entries opens nothing for it",
			Run: func(e *Env) error {
				if err := e.knockSettle(e.Topo.Foreign, knockFor(portA)); err != nil {
					return err
				}
				if err := e.expectClosed(e.Topo.Foreign, portA, "not registered for address"); err != nil {
					return err
				}
				return e.control(portA)
			}},
		{ID: "4.2/silence", Requirement: "CLASSIC-4.2", Level: "MUST NOT", Target: TargetDaemon,
			Description: "no UDP reply and no ICMP reaches the knocker for valid, invalid, replayed and junk knocks",
			Run:         runSilence},
		{ID: "4.8/junk-survives", Requirement: "CLASSIC-4.8", Level: "MUST", Target: TargetDaemon,
			Description: "300 junk datagrams (three-field packets, random bytes, every length) neither crash nor stall the daemon",
			Run:         runJunk},
	}
}

func junkPayloads(n int) []string {
	out := []string{"2222 somebody 1234567890", "2222 alice 1234567890", "", " ", "\n", "2222", "2222 alice"}
	r := rand.New(rand.NewPCG(1, 2))
	for len(out) < n {
		b := make([]byte, r.IntN(120))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		if len(b) > 0 && r.IntN(2) == 0 {
			b[0] = '0' + byte(r.IntN(10))
		}
		out = append(out, string(b))
	}
	return out
}

func runJunk(e *Env) error {
	for _, p := range junkPayloads(300) {
		if _, err := e.knock(e.Topo.Client, p); err != nil {
			return err
		}
	}
	time.Sleep(settle)
	if !e.DaemonAlive() {
		return mismatch("daemon running after junk", "it exited")
	}
	return e.control(portA)
}

func runSilence(e *Env) error {
	c := e.Topo.Client
	sn, err := startSniffer(c)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	ports := map[int]bool{}
	send := func(p string) error {
		sp, err := e.knock(c, p)
		mu.Lock()
		ports[sp] = true
		mu.Unlock()
		return err
	}
	valid := knockFor(portA)
	payloads := []string{valid, valid, classicPayload(portA, "alice", randomTag(), "wrong"),
		classicPayload(portA, "mallory", randomTag(), secretA), classicPayload(portOther, "alice", randomTag(), secretA)}
	payloads = append(payloads, junkPayloads(20)...)
	var sendErr error
	for _, p := range payloads {
		if err := send(p); err != nil {
			sendErr = err
			break
		}
	}
	// Replies, if any, come within milliseconds on the bridge.
	time.Sleep(700 * time.Millisecond)
	_ = sn.stop()
	pcap := filepath.Join(e.ArtifactDir, "client.pcap")
	_ = sn.writePcap(pcap)
	if sendErr != nil {
		return sendErr
	}
	var seen []string
	sn.mu.Lock()
	for _, f := range sn.frames {
		for p := range ports {
			if d := replyFrom(f, e.server(), p); d != "" {
				seen = append(seen, d)
				break
			}
		}
	}
	n := len(sn.frames)
	sn.mu.Unlock()
	if n < len(payloads) {
		return fmt.Errorf("harness: capture saw %d frames, fewer than the %d knocks sent", n, len(payloads))
	}
	if len(seen) > 0 {
		return mismatch("no packet from the server to the knock source ports", "%d: %s", len(seen), strings.Join(seen, "; "))
	}
	return nil
}
