//go:build linux

package conformance

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/doorman-project/doorman/conformance/adapter"
)

// Cases for section 12, the modern protocol, on the doorman's side. Every
// knock is made by the suite (modern.go) with the model's keys: carol
// and dave are modern guests, the stranger's key is in no guest entry,
// and "another doorman" has a key pair of its own. An implementation that
// does not speak the modern protocol lists "12.*" under [unsupported].
func modernCases() []*Case {
	return []*Case{
		{ID: "12.8/reject-vectors", Requirement: "MODERN-12.8/1", Level: "MUST", Target: TargetDaemon,
			Also: []string{"MODERN-12.3/2", "MODERN-12.4", "MODERN-12.5", "MODERN-12.6/2"},
			Description: "every 'reject' vector of modern.json (wrong lengths and types, broken mac1, knocks that do not decrypt or " +
				"carry a zero Diffie-Hellman result, malformed requests), each rebuilt as gen_modern.py builds it but with carol's " +
				"key, this doorman's key and a fresh time, opens nothing; a failure names the vectors",
			Timeout: 60 * time.Second, Run: runModernRejectVectors},
		{ID: "12.6/other-doorman", Requirement: "MODERN-12.6/2", Level: "MUST", Target: TargetDaemon,
			Also: []string{"MODERN-12.5", "MODERN-12.17/3"},
			Description: "carol's knock made for another doorman's key, and one encrypted to it with mac1 for this doorman, open " +
				"nothing; carol's knock with the same time made for this doorman then opens",
			Run: runOtherDoorman},
		{ID: "12.13/unknown-key", Requirement: "MODERN-12.13", Level: "MUST", Target: TargetDaemon,
			Description: "a well-made knock from a key in no guest entry, from an allowed address, opens nothing",
			Run: func(e *Env) error {
				k := keysOf(e.model).stranger
				if _, err := e.sendModern(from4(e.Topo.Client), mk{port: portA, from: &k}); err != nil {
					return err
				}
				return e.closedModern(from4(e.Topo.Client), portA, "a key no guest has")
			}},
		{ID: "12.13/key-removed-by-reload", Requirement: "MODERN-12.13", Level: "MUST", Target: TargetDaemon,
			Description: "dave's knock opens; after a reload with a guest list without dave, his fresh knock opens nothing",
			Run:         runKeyRemoved},
		{ID: "12.14/time-window", Requirement: "MODERN-12.14", Level: "MUST", Target: TargetDaemon,
			Also: []string{"MODERN-12.17/3", "MODERN-12.21"},
			Description: "with modern-window 20: knocks from 1970, 25 s behind, 25 s ahead and with the largest time open nothing; " +
				"knocks 15 s behind and 15 s ahead open theirs, the latter sent after the one 25 s ahead (a knock refused for " +
				"time does not make a later one stale)",
			Run: runTimeWindow},
		{ID: "12.15/raced-from-another-address", Requirement: "MODERN-12.15", Level: "MUST", Target: TargetDaemon,
			Also: []string{"MODERN-12.17/3"},
			Description: "carol's knock stating the first client's address, sent first from the second client (an allowed " +
				"address), opens nothing there; the same knock from the first client then opens; over IPv4 and IPv6",
			Run: runRaced},
		{ID: "12.15/as-seen", Requirement: "MODERN-12.15", Level: "MUST", Target: TargetDaemon,
			Also:        []string{"MODERN-12.18"},
			Description: "a knock that states no source, sent from the second client, opens the door for the second client and not for the first",
			Run:         runAsSeen},
		{ID: "12.16/port-and-address", Requirement: "MODERN-12.16", Level: "MUST", Target: TargetDaemon,
			Description: "carol's knock for a port only another guest may open, and her knock from a host outside her address " +
				"entries (stating that host), open nothing",
			Run: runModernPortAddress},
		{ID: "12.17/replay-and-older", Requirement: "MODERN-12.17/1", Level: "MUST", Target: TargetDaemon,
			Description: "an accepted knock sent again opens nothing, nor does an older knock of the same guest sent after it",
			Run:         runModernReplay},
		{ID: "12.17/replay-after-restart", Requirement: "MODERN-12.17/2", Level: "MUST", Target: TargetDaemon,
			Description: "a modern knock accepted before a restart (stop signal, start) is refused after it, inside the time window",
			Run: func(e *Env) error {
				return modernReplayAcross(e, func() error {
					if err := e.StopDaemon(); err != nil {
						return err
					}
					return e.StartDaemon(true)
				})
			}},
		{ID: "12.17/replay-after-kill9", Requirement: "MODERN-12.17/2", Level: "MUST", Target: TargetDaemon,
			Description: "a modern knock whose door opened is refused after the daemon is killed with SIGKILL and started again",
			Run: func(e *Env) error {
				return modernReplayAcross(e, func() error {
					if err := e.KillDaemon(); err != nil {
						return err
					}
					return e.StartDaemon(false)
				})
			}},
		{ID: "12.18/pinned-source-port", Requirement: "MODERN-12.18", Level: "MUST", Target: TargetDaemon,
			Description: "a knock stating a TCP source port: a connection from another source port is refused, then one from the stated port gets in",
			Run:         runPinnedPort},
		{ID: "12.12/per-source-rate", Requirement: "MODERN-12.12", Level: "MUST", Target: TargetDaemon,
			Also:      []string{"MODERN-12.11", "MODERN-12.21"},
			Configure: func(m *Model) { m.ModernRate, m.ModernBurst = rateCaseRate, rateCaseBurst },
			Description: fmt.Sprintf("with modern-rate %d and modern-burst %d: %d knocks from one address within half a second "+
				"open theirs, one more right after them opens nothing; a flood of knocks with a right mac1 that do not decrypt from one IPv6 address leaves "+
				"another address of its /64 refused, while a knock from another address opens during the flood; after a "+
				"refill the first address gets in again", rateCaseRate, rateCaseBurst, rateCaseBurst),
			Timeout: 45 * time.Second, Run: runRateLimit},
		{ID: "12.19/silence-and-junk", Requirement: "MODERN-12.19", Level: "MUST", Target: TargetDaemon,
			Description: "no UDP reply and no ICMP reaches the knocker for valid, replayed, refused and junk modern knocks " +
				"(300 datagrams starting with 0xD2, some with a right mac1); the daemon then still opens doors",
			Run: runModernSilence},
		{ID: "12.20/classic-knock-for-modern-guest", Requirement: "MODERN-12.20/2", Level: "MUST", Target: TargetDaemon,
			Description: "classic knocks naming the modern guest carol, signed with an empty secret, her public key or pubkey.KEY, open nothing",
			Run:         runClassicForModern},
		{ID: "12.20/classic-off", Requirement: "MODERN-12.20/3", Level: "MUST", Target: TargetDaemon,
			Configure:   func(m *Model) { m.ClassicOff = true },
			Description: "with classic off, alice's valid classic knock opens nothing while carol's modern knock opens",
			Run: func(e *Env) error {
				if _, err := e.knock(e.Topo.Client, knockFor(portA)); err != nil {
					return err
				}
				return e.closedModern(from4(e.Topo.Client), portA, "a classic knock with classic off")
			}},
		{ID: "12.20/broken-list-reload", Requirement: "MODERN-12.20/1", Level: "MUST", Target: TargetDaemon,
			Also: []string{"MODERN-12.2/3"},
			Description: "reloads with guest lists that add a new modern guest next to the zero key, a small-order key, a " +
				"malformed key or carol's key on a second guest are each refused whole: the new guest's knock opens nothing, carol's opens",
			Run: runBrokenModernList},
		{ID: "12.21/no-key-refuses-start", Requirement: "MODERN-12.21/2", Level: "MUST", Target: TargetDaemon,
			Also: []string{"MODERN-12.2/3"}, NoStart: true,
			Description: "with modern guests in the guest list, the daemon exits instead of starting when its private key " +
				"file does not exist, and when it holds 32 zero bytes",
			Run: runNoKeyStart},
		{ID: "12.21/reload-without-key", Requirement: "MODERN-12.21/2", Level: "MUST", Target: TargetDaemon,
			Description: "a reload whose private key file does not exist, with a new classic guest, is refused whole: the new " +
				"guest's knock opens nothing, carol's knock for the key in force opens",
			Run: runReloadWithoutKey},
		{ID: "12.21/reload-new-key", Requirement: "MODERN-12.21", Level: "MUST", Target: TargetDaemon,
			Description: "after a reload with a new private key, a knock made for the old key opens nothing and one for the new key opens",
			Run:         runReloadNewKey},
	}
}

// knockGap separates knocks of one guest whose order matters: a doorman
// may verify knocks in parallel and decide them out of order
// (MODERN-12.11/2), so that of two knocks sent at once the earlier may be
// refused as stale (MODERN-12.17/1).
const knockGap = 40 * time.Millisecond

// pace is the interval that keeps a source's knocks within the model's
// rate limit, with a margin: knocks that reach the public-key work must
// not be refused for rate, or a case would not test what it says.
func (e *Env) pace() time.Duration {
	r := e.model.ModernRate
	if r <= 0 {
		r = 20
	}
	return max(knockGap, 3*time.Second/time.Duration(2*r))
}

func (e *Env) rejectParams(port int, src netip.Addr) rejectParams {
	return rejectParams{client: *e.guestKey(modernCarol), server: keysOf(e.model).doorman.pub, other: keysOf(e.model).other.pub,
		eph: func(string) (k [32]byte) {
			_, _ = crand.Read(k[:])
			return k
		}, time: e.clock(), port: uint16(port), src: src}
}

// sendRejects sends the vectors from v, each rebuilt for port(i), paced so
// that those that reach the public-key work stay within the rate limit
// and that a doorman that wrongly accepts several decides them in order.
func (e *Env) sendRejects(v via, vs []ModernReject, port func(i int) int) error {
	for i, x := range vs {
		var d []byte
		if recipe, ok := rejectRecipes[x.Name]; ok {
			d = recipe(e.rejectParams(port(i), v.src()))
		} else {
			// A vector newer than the suite: sent as it is, which tests
			// less (its time is old), and said.
			b, err := x.datagram()
			if err != nil {
				return setupErr(fmt.Errorf("modern.json: %s: %w", x.Name, err))
			}
			d = b
			e.Logf("reject vector %s has no recipe in the suite: sent as it is", x.Name)
		}
		if i > 0 {
			time.Sleep(e.pace())
		}
		if err := e.sendRaw(v, d); err != nil {
			return err
		}
	}
	return nil
}

func runModernRejectVectors(e *Env) error {
	if e.ModernVectors == nil {
		return Skipf("spec/vectors/modern.json not found")
	}
	c := from4(e.Topo.Client)
	// In rounds of as many vectors as there are probe ports, each for a
	// port of its own, probed before a door it wrongly opened expires.
	var bad []string
	for rs := e.ModernVectors.Reject; len(rs) > 0; {
		round := rs[:min(len(rs), len(probePorts))]
		rs = rs[len(round):]
		if err := e.sendRejects(c, round, func(i int) int { return probePorts[i] }); err != nil {
			return err
		}
		time.Sleep(settle)
		ps := make([]probe, len(round))
		for i := range round {
			ps[i] = probe{v: c, port: probePorts[i]}
		}
		for i, perr := range probeErrs(e, ps) {
			if perr != nil {
				bad = append(bad, round[i].Name)
			}
		}
	}
	ctl, err := e.modernControl(c.h, portA)
	if err != nil {
		return err
	}
	time.Sleep(settle)
	if err := e.probeAll(ctl); err != nil {
		return err
	}
	if len(bad) > 0 {
		return mismatch("every reject vector refused (each rebuilt with a fresh time, for a port of its own)",
			"these opened their ports: %s", strings.Join(bad, ", "))
	}
	return nil
}

// probeErrs runs the probes at once and returns each one's error.
func probeErrs(e *Env, ps []probe) []error {
	errs := make([]error, len(ps))
	done := make(chan struct{}, len(ps))
	for i := range ps {
		go func() { errs[i] = e.probeAll(ps[i]); done <- struct{}{} }()
	}
	for range ps {
		<-done
	}
	return errs
}

func runOtherDoorman(e *Env) error {
	c := from4(e.Topo.Client)
	t := e.clock()
	other := keysOf(e.model).other.pub
	// Made for another doorman: mac1 and encryption for its key.
	if _, err := e.sendModern(c, mk{port: probePorts[0], at: t, to: &other}); err != nil {
		return err
	}
	// Encrypted to the other doorman, with this one's mac1: it passes the
	// cheap checks and must not decrypt.
	mixed := remac(e.sealModern(c.src(), mk{port: probePorts[1], at: t, to: &other}), keysOf(e.model).doorman.pub)
	if err := e.sendRaw(c, mixed); err != nil {
		return err
	}
	time.Sleep(settle)
	if _, err := e.sendModern(c, mk{port: portA, at: t}); err != nil {
		return err
	}
	time.Sleep(settle)
	return e.probeAll(
		probe{v: c, port: probePorts[0], why: "a knock made for another doorman's key"},
		probe{v: c, port: probePorts[1], why: "a knock encrypted to another doorman's key, with this doorman's mac1"},
		probe{v: c, port: portA, open: true, why: "the knock for this doorman, with the time of the two refused before it"})
}

func runKeyRemoved(e *Env) error {
	c := from4(e.Topo.Client)
	dave := e.guestKey(modernDave)
	if _, err := e.sendModern(c, mk{port: portA, from: dave}); err != nil {
		return err
	}
	time.Sleep(settle)
	if err := e.probeAll(probe{v: c, port: portA, open: true, why: "dave's knock before the reload"}); err != nil {
		return err
	}
	m := e.model
	m.ModernGuests = slices.DeleteFunc(slices.Clone(m.ModernGuests), func(g ModernGuest) bool { return g.Name == modernDave })
	if err := e.ReloadDaemon(m); err != nil {
		return err
	}
	if _, err := e.sendModern(c, mk{port: portB, from: dave}); err != nil {
		return err
	}
	return e.closedModern(c, portB, "dave's knock after a reload removed him")
}

func runTimeWindow(e *Env) error {
	c := from4(e.Topo.Client)
	w := time.Duration(e.model.ModernWindow) * time.Second
	if w <= 0 {
		w = 60 * time.Second
	}
	knocks := []struct {
		m    mk
		open bool
		why  string
	}{
		// In the order of their times, so that a doorman without a
		// window accepts each refused one and the case names them all.
		{mk{at: 1}, false, "a knock from 1970"},
		{mk{skew: -w - 5*time.Second}, false, "a knock 5 s behind the window"},
		{mk{skew: -w + 5*time.Second}, true, "a knock 5 s inside the window, behind"},
		{mk{skew: w + 5*time.Second}, false, "a knock 5 s ahead of the window"},
		// Earlier than the knock refused before it (MODERN-12.17/3).
		{mk{skew: w - 5*time.Second}, true, "a knock 5 s inside the window, ahead, sent after one refused for being further ahead"},
		{mk{at: math.MaxUint64}, false, "a knock with the largest time"},
	}
	var ps []probe
	for i, k := range knocks {
		k.m.port = probePorts[i]
		time.Sleep(knockGap)
		if _, err := e.sendModern(c, k.m); err != nil {
			return err
		}
		ps = append(ps, probe{v: c, port: k.m.port, open: k.open,
			why: fmt.Sprintf("%s (window %v)", k.why, w)})
	}
	time.Sleep(settle)
	return e.probeAll(ps...)
}

func runRaced(e *Env) error {
	t := e.Topo
	var ps []probe
	for _, v6 := range []bool{false, true} {
		genuine, racer := via{t.Client, v6}, via{t.Client2, v6}
		k := e.sealModern(genuine.src(), mk{port: portA})
		if err := e.sendRaw(racer, k); err != nil {
			return err
		}
		time.Sleep(settle)
		if err := e.sendRaw(genuine, k); err != nil {
			return err
		}
		ps = append(ps,
			probe{v: racer, port: portA, why: fmt.Sprintf("a copy of a knock stating %s, raced from %s", genuine, racer)},
			probe{v: genuine, port: portA, open: true, why: fmt.Sprintf("the genuine knock, after its copy from %s was refused", racer)})
	}
	time.Sleep(settle)
	return e.probeAll(ps...)
}

func runAsSeen(e *Env) error {
	t := e.Topo
	if _, err := e.sendModern(from4(t.Client2), mk{port: portA, asSeen: true}); err != nil {
		return err
	}
	time.Sleep(settle)
	return e.probeAll(
		probe{v: from4(t.Client2), port: portA, open: true, why: "a knock as seen, sent from this address"},
		probe{v: from4(t.Client), port: portA, why: "another allowed address; the as-seen knock came from the second client"})
}

func runModernPortAddress(e *Env) error {
	t := e.Topo
	if _, err := e.sendModern(from4(t.Client), mk{port: portOther}); err != nil {
		return err
	}
	if _, err := e.sendModern(from4(t.Foreign), mk{port: portA}); err != nil {
		return err
	}
	ctl, err := e.modernControl(t.Client, portA)
	if err != nil {
		return err
	}
	time.Sleep(settle)
	return e.probeAll(
		probe{v: from4(t.Client), port: portOther, why: fmt.Sprintf("carol asked for port %d, which is not hers", portOther)},
		probe{v: from4(t.Foreign), port: portA, why: "carol's knock from an address outside her entries, stating it"},
		ctl)
}

func runModernReplay(e *Env) error {
	c := from4(e.Topo.Client)
	older := e.sealModern(c.src(), mk{port: portB})
	k, err := e.sendModern(c, mk{port: portA})
	if err != nil {
		return err
	}
	time.Sleep(settle)
	if err := e.probeAll(probe{v: c, port: portA, open: true, why: "the first knock"}); err != nil {
		return err
	}
	if err := e.sendRaw(c, k); err != nil {
		return err
	}
	if err := e.sendRaw(c, older); err != nil {
		return err
	}
	// The control knocks from the second client: its doors are its own.
	ctl, err := e.modernControl(c.h, portA)
	if err != nil {
		return err
	}
	time.Sleep(settle)
	return e.probeAll(
		probe{v: c, port: portA, why: "the accepted knock sent again"},
		probe{v: c, port: portB, why: "an older knock of the same guest, sent after the newer one was accepted"},
		ctl)
}

func modernReplayAcross(e *Env, restart func() error) error {
	c := from4(e.Topo.Client)
	k, err := e.sendModern(c, mk{port: portA})
	if err != nil {
		return err
	}
	time.Sleep(settle)
	if err := e.probeAll(probe{v: c, port: portA, open: true, why: "the knock before the restart"}); err != nil {
		return err
	}
	if err := restart(); err != nil {
		return err
	}
	if err := e.sendRaw(c, k); err != nil {
		return err
	}
	return e.closedModern(c, portA, "the knock accepted before the restart, sent again after it")
}

func runPinnedPort(e *Env) error {
	c := e.Topo.Client
	stated := 20000 + rand.IntN(15000)
	other := stated + 1 + rand.IntN(10000)
	if _, err := e.sendModern(from4(c), mk{port: portA, srcPort: uint16(stated)}); err != nil {
		return err
	}
	time.Sleep(settle)
	if conn, err := dialFromPort(c, e.server(), portA, other, closedTimeout); err == nil {
		_ = conn.SetLinger(0)
		conn.Close()
		return mismatch(fmt.Sprintf("a connection from source port %d refused (the knock stated source port %d)", other, stated),
			"it was established")
	}
	conn, err := dialFromPort(c, e.server(), portA, stated, openTimeout)
	if err != nil {
		return mismatch(fmt.Sprintf("a connection from the stated source port %d admitted", stated), "connect failed: %v", err)
	}
	_ = conn.SetLinger(0)
	conn.Close()
	return nil
}

// Rate limit of 12.12/per-source-rate: one knock a second, so that a
// refill takes long enough to be told from none, and a burst above the
// default (5), so that a doorman that ignores modern-burst shows it.
const (
	rateCaseRate  = 1
	rateCaseBurst = 8
	floodSize     = 2000
)

func runRateLimit(e *Env) error {
	t := e.Topo
	a, b := from4(t.Client), from4(t.Client2)
	// A burst from one address: rateCaseBurst knocks open theirs, one
	// more does not. The knocks take turns between carol and dave and
	// keep knockGap apart, so that none is stale: the rate limit is per
	// address, the time per guest.
	guests := []*keyPair{e.guestKey(modernCarol), e.guestKey(modernDave)}
	var ps []probe
	for i := range rateCaseBurst {
		if _, err := e.sendModern(a, mk{port: probePorts[i], from: guests[i%2]}); err != nil {
			return err
		}
		time.Sleep(knockGap)
		ps = append(ps, probe{v: a, port: probePorts[i], open: true, why: fmt.Sprintf("knock %d of a burst of %d", i+1, rateCaseBurst)})
	}
	if _, err := e.sendModern(a, mk{port: portA, from: guests[rateCaseBurst%2]}); err != nil {
		return err
	}
	burst := time.Duration(rateCaseBurst) * knockGap
	ps = append(ps, probe{v: a, port: portA,
		why: fmt.Sprintf("a knock %v after the first of a burst of %d from the same address", burst, rateCaseBurst)})
	// A flood of knocks that pass mac1 and do not decrypt, from the first
	// client's IPv6 address: they use up the budget of its /64, which the
	// second client's IPv6 address shares; the second client's IPv4
	// address knocks during the flood.
	junk := modernJunk(keysOf(e.model).doorman.pub, floodSize)
	if err := e.sendMany(from6(t.Client), junk[:rateCaseBurst*4]); err != nil {
		return err
	}
	flood := make(chan error, 1)
	go func() {
		var err error
		for i := rateCaseBurst * 4; i < len(junk) && err == nil; i += 100 {
			err = e.sendMany(from6(t.Client), junk[i:min(i+100, len(junk))])
			time.Sleep(5 * time.Millisecond)
		}
		flood <- err
	}()
	time.Sleep(knockGap)
	if _, err := e.sendModern(from6(t.Client2), mk{port: portB, from: guests[0]}); err != nil {
		return err
	}
	if _, err := e.sendModern(b, mk{port: portB, from: guests[1]}); err != nil {
		return err
	}
	ps = append(ps,
		probe{v: from6(t.Client2), port: portB, why: "a knock from an address in the /64 another address of which floods"},
		probe{v: b, port: portB, open: true, why: fmt.Sprintf("a knock from another address while %s floods", t.Client.Addr6)})
	time.Sleep(settle)
	err := errors.Join(e.probeAll(ps...), <-flood)
	if err != nil {
		return err
	}
	// After a refill, the first address gets in again: a rate, not a ban.
	refill := time.Second/rateCaseRate + 100*time.Millisecond
	time.Sleep(refill)
	if _, err := e.sendModern(a, mk{port: portA}); err != nil {
		return err
	}
	time.Sleep(settle)
	return e.probeAll(probe{v: a, port: portA, open: true, why: fmt.Sprintf("a knock more than %v after the burst", refill)})
}

func runModernSilence(e *Env) error {
	c := from4(e.Topo.Client)
	server := keysOf(e.model).doorman.pub
	valid := e.sealModern(c.src(), mk{port: portA})
	stranger := keysOf(e.model).stranger
	payloads := [][]byte{valid, valid,
		e.sealModern(c.src(), mk{port: portOther}),                                 // not her port
		e.sealModern(c.src(), mk{port: portA, from: &stranger}),                    // unknown key
		e.sealModern(c.src(), mk{port: portA, skew: -10 * time.Minute}),            // outside the window
		e.sealModern(e.Topo.Client2.Addr, mk{port: portA}),                         // another stated source
		flip(e.sealModern(c.src(), mk{port: portA}), offRequest, 1),                // bad mac1
		remac(flip(e.sealModern(c.src(), mk{port: portA}), offRequest, 1), server), // does not decrypt
	}
	payloads = append(payloads, modernJunk(server, 50)...)
	r := rand.New(rand.NewPCG(3, 4))
	for len(payloads) < 300 {
		b := make([]byte, r.IntN(260))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		if len(b) > 0 {
			b[0] = modernMagic
		}
		if len(b) > 1 && r.IntN(2) == 0 {
			b[1] = modernTypeKnock
		}
		payloads = append(payloads, b)
	}
	if err := e.silent(c.h, payloads); err != nil {
		return err
	}
	if !e.DaemonAlive() {
		return mismatch("daemon running after modern junk", "it exited")
	}
	ctl, err := e.modernControl(c.h, portB)
	if err != nil {
		return err
	}
	time.Sleep(settle)
	return e.probeAll(ctl)
}

func runClassicForModern(e *Env) error {
	key := e.model.ModernGuests[0].PublicKey
	for _, secret := range []string{"", key, "pubkey." + key} {
		if _, err := e.knock(e.Topo.Client, classicPayload(portA, modernCarol, randomTag(), secret)); err != nil {
			return err
		}
	}
	return e.closedModern(from4(e.Topo.Client), portA, "classic knocks naming the modern guest carol")
}

func runBrokenModernList(e *Env) error {
	erin := newKeyPair()
	nets := e.model.ModernGuests[0].Networks
	broken := []struct {
		what  string
		guest ModernGuest
	}{
		{"the zero key", ModernGuest{Name: "zed", PublicKey: keyText([32]byte{}), Ports: []int{portA}, Networks: nets}},
		{"a small-order key", ModernGuest{Name: "zed", PublicKey: keyText(smallOrderPoint), Ports: []int{portA}, Networks: nets}},
		{"a malformed key", ModernGuest{Name: "zed", PublicKey: "bm90IGEga2V5", Ports: []int{portA}, Networks: nets}},
		{"carol's key on a second guest", ModernGuest{Name: "zed", PublicKey: e.model.ModernGuests[0].PublicKey, Ports: []int{portA}, Networks: nets}},
	}
	keep := e.model
	for _, b := range broken {
		m := keep
		m.ModernGuests = append(slices.Clone(keep.ModernGuests),
			ModernGuest{Name: "erin", PublicKey: keyText(erin.pub), Ports: []int{portA}, Networks: nets}, b.guest)
		if err := e.ReloadDaemon(m); err != nil {
			return err
		}
		if !e.DaemonAlive() {
			return mismatch("daemon still running after a reload with "+b.what, "it exited")
		}
	}
	// The model in force is the last broken one; the old list is what
	// must be in force.
	e.model = keep
	if _, err := e.sendModern(from4(e.Topo.Client), mk{port: portA, from: &erin}); err != nil {
		return err
	}
	whats := make([]string, len(broken))
	for i, b := range broken {
		whats[i] = b.what
	}
	return e.closedModern(from4(e.Topo.Client), portA,
		"erin, added by guest lists that also held "+strings.Join(whats, ", or "))
}

func runNoKeyStart(e *Env) error {
	for _, c := range []struct {
		what string
		key  string // "" writes no key file
	}{
		{"its private key file does not exist", ""},
		{"its private key file holds 32 zero bytes", keyText([32]byte{})},
	} {
		e.model.PrivateKey = c.key
		err := e.StartDaemon(true)
		switch {
		case err == nil:
			return mismatch(fmt.Sprintf("the daemon refuses to start: the guest list has %d modern guests and %s",
				len(e.model.ModernGuests), c.what), "it started")
		case errors.Is(err, ErrSetup):
			return err
		case !errors.Is(err, adapter.ErrExited):
			return mismatch("the daemon exits: it has modern guests and "+c.what, "%v", err)
		}
	}
	return nil
}

func runReloadWithoutKey(e *Env) error {
	m := e.model
	m.PrivateKey, m.PrivateKeyFile = "", m.PrivateKeyFile+".missing"
	m.Guests = append(slices.Clone(m.Guests), Guest{Name: "gina", Secret: "g1naSecret", Ports: []int{portA}, Networks: m.Guests[0].Networks})
	keep := e.model
	if err := e.ReloadDaemon(m); err != nil {
		return err
	}
	if !e.DaemonAlive() {
		return mismatch("daemon still running after a reload without its private key", "it exited")
	}
	e.model = keep
	if _, err := e.knock(e.Topo.Client, classicPayload(portA, "gina", randomTag(), "g1naSecret")); err != nil {
		return err
	}
	return e.closedModern(from4(e.Topo.Client), portA, "gina, added by a reload whose private key file does not exist")
}

func runReloadNewKey(e *Env) error {
	old := keysOf(e.model).doorman.pub
	if err := e.ReloadDaemon(withDoorman(e.model, newKeyPair())); err != nil {
		return err
	}
	c := from4(e.Topo.Client)
	if _, err := e.sendModern(c, mk{port: portA, to: &old}); err != nil {
		return err
	}
	return e.closedModern(c, portA, "a knock made for the key the reload replaced")
}
