//go:build linux

package conformance

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strings"
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
				return e.rejected(e.Topo.Client, classicPayload(portOther, "alice", randomTag(), secretA), portOther, "not registered for port")
			}},
		{ID: "4.1/address-not-allowed", Requirement: "CLASSIC-4.1", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock from a host outside alice's address entries opens nothing for it",
			Run: func(e *Env) error {
				return e.rejected(e.Topo.Foreign, knockFor(portA), portA, "not registered for address")
			}},
		{ID: "4.2/silence", Requirement: "CLASSIC-4.2", Level: "MUST NOT", Target: TargetDaemon,
			Description: "no UDP reply and no ICMP reaches the knocker for valid, invalid, replayed and junk knocks",
			Run:         runSilence},
		{ID: "4.2/knock-port-open-host", Requirement: "CLASSIC-4.2/2", Level: "MUST", Target: TargetDaemon, OpenHost: true,
			Description: "with no admin firewall (no preamble), datagrams to the knock port over IPv4 and IPv6 draw no ICMP and no reply, while a closed UDP port answers",
			Run:         runKnockPortOpenHost},
		{ID: "4.8/junk-survives", Requirement: "CLASSIC-4.8", Level: "MUST NOT", Target: TargetDaemon,
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

// replies returns what the server sent that the sniffer saw.
func (s *sniffer) replies(srcs ...netip.Addr) []reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []reply
	for _, f := range s.frames {
		if r, ok := parseReply(f, srcs...); ok {
			out = append(out, r)
		}
	}
	return out
}

func (s *sniffer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

func runSilence(e *Env) error {
	valid := knockFor(portA)
	payloads := []string{valid, valid, classicPayload(portA, "alice", randomTag(), "wrong"),
		classicPayload(portA, "mallory", randomTag(), secretA), classicPayload(portOther, "alice", randomTag(), secretA)}
	payloads = append(payloads, junkPayloads(20)...)
	bs := make([][]byte, len(payloads))
	for i, p := range payloads {
		bs[i] = []byte(p)
	}
	return e.silent(e.Topo.Client, bs)
}

// silent sends the payloads from h, each from a socket of its own, and
// checks that nothing came back: no ICMP error and no datagram to their
// source ports (CLASSIC-4.2).
func (e *Env) silent(c Host, payloads [][]byte) error {
	sn, err := startSniffer(c)
	if err != nil {
		return setupErr(err)
	}
	ports := map[int]bool{}
	var sendErr error
	for _, p := range payloads {
		sp, err := udpSend(c, e.server(), knockPort, p)
		if err != nil {
			sendErr = err
			break
		}
		ports[sp] = true
	}
	// Replies, if any, come within milliseconds on the bridge.
	time.Sleep(700 * time.Millisecond)
	sn.stop()
	_ = sn.writePcap(filepath.Join(e.ArtifactDir, "silence-client.pcap"))
	if sendErr != nil {
		return sendErr
	}
	if n := sn.count(); n < len(payloads) {
		return setupErr(fmt.Errorf("capture saw %d frames, fewer than the %d knocks sent", n, len(payloads)))
	}
	var seen []string
	for _, r := range sn.replies(e.server(), e.Topo.Server.Addr6) {
		if r.icmp || ports[r.udpDstPort] {
			seen = append(seen, r.desc)
		}
	}
	if len(seen) > 0 {
		return mismatch("no packet from the server to the knocker", "%d: %s", len(seen), strings.Join(seen, "; "))
	}
	return nil
}

// runKnockPortOpenHost runs with no admin firewall at all: only the
// daemon's own setup can keep the kernel from answering datagrams to the
// knock port with ICMP port unreachable (CLASSIC-4.2/2).
func runKnockPortOpenHost(e *Env) error {
	t := e.Topo
	sn, err := startSniffer(t.Client)
	if err != nil {
		return setupErr(err)
	}
	defer sn.stop()
	// Control first (ICMP errors are rate-limited per peer): on this open
	// host a closed UDP port must answer, or the case cannot tell.
	closedPort := knockPort + 1
	for _, dst := range []netip.Addr{t.Server.Addr, t.Server.Addr6} {
		if _, err := udpSend(t.Client, dst, closedPort, []byte("closed port?")); err != nil {
			return setupErr(err)
		}
	}
	ports := map[int]bool{}
	for _, dst := range []netip.Addr{t.Server.Addr, t.Server.Addr6} {
		for _, p := range []string{knockFor(portA), "2222 alice", "\xd2junk", "not a knock"} {
			sp, err := udpSend(t.Client, dst, knockPort, []byte(p))
			if err != nil {
				return setupErr(err)
			}
			ports[sp] = true
		}
	}
	time.Sleep(700 * time.Millisecond)
	sn.stop()
	_ = sn.writePcap(filepath.Join(e.ArtifactDir, "knock-port-client.pcap"))
	var answered, seen []string
	for _, r := range sn.replies(t.Server.Addr, t.Server.Addr6) {
		switch {
		case r.icmp && r.quotedDstPort == closedPort:
			answered = append(answered, r.desc)
		case r.icmp && r.quotedDstPort == knockPort, ports[r.udpDstPort]:
			seen = append(seen, r.desc)
		}
	}
	if len(seen) > 0 {
		return mismatch(fmt.Sprintf("no answer to datagrams to the knock port %d on a host with no admin firewall (the doorman's own setup drops them)", knockPort),
			"%d: %s", len(seen), strings.Join(seen, "; "))
	}
	if len(answered) < 2 {
		return setupErr(fmt.Errorf("control: the server should answer a datagram to the closed port %d over IPv4 and IPv6 with ICMP (the admin firewall is reset, so nothing drops it), but %d answers came: the adapter's reset leaves a firewall in place", closedPort, len(answered)))
	}
	return nil
}
