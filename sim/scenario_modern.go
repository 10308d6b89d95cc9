//go:build linux

package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	dt "github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
	"github.com/doorman-project/doorman/protocol"
)

// modernSkew is how far ahead the skewed client's clock is: past the
// window of protocol.DefaultModernWindow.
const modernSkew = 93 * time.Second

// modernRefused is how long a connection attempt waits before the modern
// scenario takes the port as closed.
const modernRefused = 300 * time.Millisecond

func modernScenario() Scenario {
	return Scenario{
		Name: "modern",
		Description: "a modern knock opens one connection; replayed (also after a restart and kill -9), raced from another address, " +
			"sealed for another doorman or from a skewed clock it is refused",
		Tags:  []string{TagModern, TagQuick},
		Needs: []Need{NeedDoormand, NeedNftables},
		Run:   runModern,
	}
}

func runModern(ctx context.Context, r *Run) error {
	lab, err := perfLAN(ctx, r, perfSetup{names: []string{"client", "attacker"}, modern: true})
	if err != nil {
		return err
	}
	d, keys := lab.d, lab.keys
	client, attacker := lab.others["client"], lab.others["attacker"]
	armed := dt.DoorState(dt.StateArmed)
	modernOK := dt.Accepted().And(func(e dt.Event) bool { return e.Protocol == "modern" })
	stale := dt.Rejected("stale")
	knockDst := netip.AddrPortFrom(lab.server.Addr4, scenKnockPort)
	send := func(h *netsim.Host, what string, p []byte) error {
		r.Step("%s: %d bytes from %s (%s)", what, len(p), h.Name(), h.Addr4())
		_, err := sendUDPFrom(h, h.Addr4(), knockDst, p)
		return err
	}
	dryRun := func() ([]byte, error) {
		out, err := client.Command(ctx, filepath.Join(r.Bin, "knock"), "-f", keys.knockcf, "--dry-run",
			lab.server.Addr4.String(), fmt.Sprint(scenSvcPort)).Output()
		if err != nil {
			return nil, fmt.Errorf("knock --dry-run: %w", err)
		}
		p, err := hex.DecodeString(strings.TrimSpace(string(out)))
		if err != nil || len(p) != protocol.ModernKnockLen {
			return nil, fmt.Errorf("knock --dry-run printed %q", out)
		}
		return p, nil
	}
	// A SYN the door drops gets no answer; in namespaces an answer comes
	// within microseconds, so a short wait tells a closed port.
	shut := func(h *netsim.Host) bool {
		c := dt.Dial(h, lab.svc, modernRefused, time.Second)
		if c != nil {
			c.Close()
		}
		return c == nil
	}
	checkShut := func(h *netsim.Host) { r.Check(shut(h), "port %d closed from %s", scenSvcPort, h.Name()) }
	checkShut(client)

	// 1. The knock binary, with the doorman's server record: one connection.
	r.Step("knock from client with .knockcf naming the doorman's public key: a modern knock")
	if out, err := client.Command(ctx, filepath.Join(r.Bin, "knock"), "-f", keys.knockcf,
		lab.server.Addr4.String(), fmt.Sprint(scenSvcPort)).CombinedOutput(); err != nil {
		return fmt.Errorf("knock: %w: %s", err, out)
	}
	if !d.waitN(armed.From(client.Addr4()), 1, 3*time.Second, "a door was armed for the modern knock") {
		return nil
	}
	ev, _ := d.Last(modernOK)
	r.Check(ev.Group == modernGuest && ev.Source == "stated" && ev.Src == client.Addr4(),
		"the knock was accepted as modern, for %s, with the client's address stated (group %q, source %q, src %v)", modernGuest, ev.Group, ev.Source, ev.Src)
	conn := d.dial(client)
	r.Check(conn != nil, "the client got in")
	r.Check(shut(client), "a second connection is refused: one knock, one connection")
	if conn != nil {
		conn.Close()
	}

	// 2. Replayed: stale, and no door.
	p, err := dryRun()
	if err != nil {
		return err
	}
	if err := send(client, "a knock made with knock --dry-run", p); err != nil {
		return err
	}
	d.waitN(modernOK, 2, 3*time.Second, "it was accepted")
	d.waitN(armed.From(client.Addr4()), 2, 3*time.Second, "its door was armed")
	doors := d.Count(armed)
	if err := send(client, "the same knock again", p); err != nil {
		return err
	}
	d.waitN(stale.From(client.Addr4()), 1, 3*time.Second, "the replay was refused as stale")
	if conn := d.dial(client); r.Check(conn != nil, "the client got in through the first knock's door") {
		conn.Close()
	}
	r.Check(shut(client), "no second connection: the replay opened no door")
	r.Check(d.Count(armed) == doors, "the replay armed no door (%d doors armed in all)", d.Count(armed))

	// A door waits (queued) while an earlier door of the same client, port
	// and address is open: let both of the client's connections be seen
	// closed, so that the next door is armed at once.
	d.waitN(dt.Closed("").From(client.Addr4()), 2, 2*scenWaitfor, "the client's two doors closed after their connections")

	// 3. Raced: an attacker who saw the knock sends it first, from its own
	// address; the knock states the client's, so it is refused, and the
	// client's own copy, arriving second, still opens the door.
	raced, err := dryRun()
	if err != nil {
		return err
	}
	if err := send(attacker, "the attacker races the client's next knock", raced); err != nil {
		return err
	}
	d.waitN(dt.Rejected("source-mismatch").From(attacker.Addr4()), 1, 3*time.Second, "the raced knock from %s was refused: source-mismatch", attacker.Addr4())
	if err := send(client, "the client's own copy, second", raced); err != nil {
		return err
	}
	d.waitN(modernOK.From(client.Addr4()), 3, 3*time.Second, "the client's knock was accepted after the race")
	if conn := d.dial(client); r.Check(conn != nil, "the client got in after the race") {
		conn.Close()
	}
	r.Check(shut(attacker), "the attacker does not get in")
	r.Check(d.Count(armed.From(attacker.Addr4())) == 0, "no door was ever armed for the attacker")

	// 4. For another doorman: dropped at mac1 before any public-key work,
	// counted, no knock event.
	other, err := protocol.NewPrivateKey(rand.Reader)
	if err != nil {
		return err
	}
	before, err := d.Counters(3 * time.Second)
	if err != nil {
		return err
	}
	q, err := keys.seal(other.Public(), protocol.Request{Port: scenSvcPort, Source: client.Addr4()})
	if err != nil {
		return err
	}
	knocks := d.Count(dt.IsKind(dt.KindKnock))
	if err := send(client, "a knock sealed for another doorman", q); err != nil {
		return err
	}
	counted := pollUntil(3*time.Second, func() bool {
		ev, err := d.Counters(3 * time.Second)
		return err == nil && ev.Counters["bad-mac1"] > before.Counters["bad-mac1"]
	})
	r.Check(counted, "it was dropped at mac1 (counter bad-mac1 rose)")
	r.Check(d.Count(dt.IsKind(dt.KindKnock)) == knocks, "it reached no verification (no knock event)")

	// 5. A clock modernSkew ahead: refused, with the skew in the event.
	q, err = keys.seal(keys.server.Public(), protocol.Request{Time: uint64(time.Now().Add(modernSkew).UnixNano()),
		Port: scenSvcPort, Source: client.Addr4()})
	if err != nil {
		return err
	}
	if err := send(client, fmt.Sprintf("a knock from a clock %v ahead", modernSkew), q); err != nil {
		return err
	}
	if d.waitN(dt.Rejected("clock-skew").From(client.Addr4()), 1, 3*time.Second, "the skewed knock was refused: clock-skew") {
		ev, _ := d.Last(dt.Rejected("clock-skew"))
		want := modernSkew.Milliseconds()
		r.Check(ev.SkewMS > want-1000 && ev.SkewMS < want+1000, "the event gives the skew: %d ms (about %d)", ev.SkewMS, want)
	}
	checkShut(client)

	// 6. Stale after kill -9 and after a restart (MODERN-12.17/2).
	p2, err := dryRun()
	if err != nil {
		return err
	}
	if err := send(client, "a fresh knock", p2); err != nil {
		return err
	}
	if !d.waitN(modernOK.From(client.Addr4()), 4, 3*time.Second, "it was accepted") {
		return nil
	}
	if err := d.kill9(); err != nil {
		return err
	}
	if err := d.restart(ctx); err != nil {
		return err
	}
	n := d.Count(stale)
	if err := send(client, "after kill -9: that knock", p2); err != nil {
		return err
	}
	if err := send(client, "after kill -9: the first replayed knock", p); err != nil {
		return err
	}
	d.waitN(stale, n+2, 3*time.Second, "both refused as stale after kill -9")
	if err := d.stop(); err != nil {
		r.Check(false, "doormand exited cleanly on SIGTERM: %v", err)
	}
	if err := d.restart(ctx); err != nil {
		return err
	}
	if err := send(client, "after a restart: that knock again", p2); err != nil {
		return err
	}
	d.waitN(stale, n+3, 3*time.Second, "refused as stale after a restart")
	checkShut(client)
	r.Check(d.Count(dt.Accepted()) == 4, "only the four genuine knocks were ever accepted (%d)", d.Count(dt.Accepted()))
	return d.stop()
}
