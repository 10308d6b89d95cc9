//go:build linux

package sim

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/doorman-project/doorman/conformance/adapter"
	dt "github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
)

// networkScenarios are the scenarios about topology and daemon lifecycle:
// isolation, nat, lossy, crash, reload.
func networkScenarios() []Scenario {
	return []Scenario{isolationScenario(), natScenario(), lossyScenario(), crashScenario(), reloadScenario()}
}

// Constants of the network scenarios: a second service nobody may knock
// for, a second guest, and the bounds of the lossy retry loop.
const (
	scenOtherPort  = 80
	scenGuest2     = "bob"
	scenSecret2    = "b0bsKnock"
	scenLossyTries = 20
)

// Events the network scenarios count.
var (
	accepted = dt.Accepted()
	armed    = dt.DoorState(dt.StateArmed)
	replayed = dt.Rejected("replay")
)

// doorsOpened counts the doors that were armed, each once however often
// it was armed again.
func doorsOpened(d *doorman) int {
	ids := map[uint64]bool{}
	for _, e := range d.Events() {
		if armed(e) {
			ids[e.Door] = true
		}
	}
	return len(ids)
}

// isolationScenario plays on the scenarios' LAN:
//
//	+--------+    +--------+    +-----------+
//	| server |    | client |    | bystander |
//	+--------+    +--------+    +-----------+
//	    |  .1         | .2          | .3
//	----+-------------+-------------+---- lan 198.18.1.0/24
//
// The server runs doormand (door for alice to :2222) and a second service
// on :80 that no guest may ask for.
func isolationScenario() Scenario {
	return Scenario{
		Name:        "isolation",
		Description: "a knock for port 2222 opens only that port and only for the knocking client",
		Tags:        []string{TagQuick, TagNetwork},
		Needs:       []Need{NeedNftables},
		Run: func(ctx context.Context, r *Run) error {
			t, d, err := lanWith(ctx, r, "client", "bystander")
			if err != nil {
				return err
			}
			client, bystander := t.others["client"], t.others["bystander"]
			other := netip.AddrPortFrom(t.server.Addr4(), scenOtherPort)
			if err := dt.Serve(ctx, t.server, other); err != nil {
				return err
			}
			r.Step("second service on the server at :%d; no guest is registered for it", scenOtherPort)
			checkClosedAt(r, client, other)
			if err := d.knock(ctx, client); err != nil {
				return err
			}
			d.waitN(accepted, 1, 3*time.Second, "doormand accepted the knock")
			if !d.waitN(armed, 1, 3*time.Second, "doormand opened the door") {
				return nil
			}
			d.checkDoors(ctx, func(n int) bool { return n == 1 }, "exactly one door in the firewall")
			r.Step("while the door is broad (any source port from client), try the other port from client")
			checkClosedAt(r, client, other)
			r.Step("connect from client to :%d", scenSvcPort)
			conn := d.dial(client)
			if !r.Check(conn != nil, "connection from client to :%d got through", scenSvcPort) {
				return nil
			}
			defer conn.Close()
			r.Step("with client's connection open, try everything else")
			checkClosedAt(r, client, other)
			d.checkClosed(bystander)
			checkClosedAt(r, bystander, other)
			r.Step("alice knocks for port %d, which is not hers", scenOtherPort)
			if err := d.knockAs(ctx, client, scenGuest, scenSecret, scenOtherPort); err != nil {
				return err
			}
			d.waitN(dt.Rejected("port-not-allowed"), 1, 3*time.Second, "doormand refused it: port-not-allowed")
			d.checkEvents(func() bool { return d.Count(accepted) == 1 }, "no further knock was accepted")
			checkClosedAt(r, client, other)
			r.Step("close the connection")
			conn.Close()
			d.waitN(dt.Closed("connection-ended"), 1, 4*time.Second, "door closed after the connection ended")
			d.checkDoors(ctx, func(n int) bool { return n == 0 }, "no door left in the firewall")
			d.checkClosed(client)
			return nil
		},
	}
}

// natScenario puts the client behind a masquerading router; the server
// and a stranger sit on a wan LAN behind an ISP host that routes:
//
//	 home 198.18.2.0/24                                 wan 198.18.1.0/24
//	+---------+                                            +--------+
//	| client  |--+                                      +--| server | doormand
//	+---------+  |    +--------+  198.18.3.0/24 +-----+ |  +--------+
//	             +----| router |================| isp |-+
//	+---------+  |    +--------+  masquerade    +-----+ |  +----------+
//	| client2 |--+                (routes)              +--| stranger |
//	+---------+                                            +----------+
//
// The guest list allows only the router's outside address.
func natScenario() Scenario {
	return Scenario{
		Name:        "nat",
		Description: "a client behind NAT gets in through the router's address, which any host behind the router shares",
		Tags:        []string{TagQuick, TagNetwork},
		Needs:       []Need{NeedNftables, NeedNftNAT},
		Run: func(ctx context.Context, r *Run) error {
			n := r.Net
			server, err := n.AddHost("server")
			if err != nil {
				return err
			}
			stranger, err := n.AddHost("stranger")
			if err != nil {
				return err
			}
			isp, err := n.AddHost("isp")
			if err != nil {
				return err
			}
			wan, err := n.LAN("wan", server, stranger, isp)
			if err != nil {
				return err
			}
			client, err := n.AddHost("client")
			if err != nil {
				return err
			}
			client2, err := n.AddHost("client2")
			if err != nil {
				return err
			}
			home, err := n.LAN("home", client, client2)
			if err != nil {
				return err
			}
			router, err := n.Router("router", home, isp)
			if err != nil {
				return err
			}
			if err := isp.SetForwarding(true); err != nil {
				return err
			}
			outside := router.Addr4() // the router's first link is its uplink
			gw := wan.End(isp).Addr4
			for _, h := range []*netsim.Host{server, stranger} {
				if err := h.AddRoute(netip.PrefixFrom(outside, 24).Masked(), gw); err != nil {
					return err
				}
			}
			r.Step("home LAN: client %s, client2 %s behind router (masquerades to %s)", client.Addr4(), client2.Addr4(), outside)
			r.Step("wan LAN: server %s, stranger %s, isp %s routing to the router", server.Addr4(), stranger.Addr4(), gw)
			d, err := setupDoorman(ctx, r, server, wan.End(server).Name, netip.PrefixFrom(outside, 32))
			if err != nil {
				return err
			}
			d.checkClosed(client)
			d.checkClosed(stranger)
			if err := d.knock(ctx, client); err != nil {
				return err
			}
			if !d.waitN(accepted, 1, 3*time.Second, "doormand accepted the knock") {
				return nil
			}
			d.waitN(armed, 1, 3*time.Second, "doormand opened the door")
			var src []netip.Addr
			for _, e := range d.Events() {
				if accepted(e) {
					src = append(src, e.Src)
				}
			}
			d.checkEvents(func() bool { return len(src) == 1 && src[0] == outside },
				"doormand saw the router's outside address %s as the knock source (saw: %v)", outside, src)
			d.checkEvents(func() bool { return d.Count(func(e dt.Event) bool { return e.Src == client.Addr4() }) == 0 },
				"doormand never saw client's own address %s", client.Addr4())
			r.Step("connect from client")
			conn := d.dial(client)
			if !r.Check(conn != nil, "connection from client behind NAT got through") {
				return nil
			}
			defer conn.Close()
			d.checkClosed(stranger)
			r.Step("stranger knocks with alice's secret from its own address")
			if err := d.knock(ctx, stranger); err != nil {
				return err
			}
			d.waitN(dt.Rejected("address-not-allowed").From(stranger.Addr4()), 1, 3*time.Second, "doormand refused it: address-not-allowed")
			d.checkClosed(stranger)
			r.Step("client knocks again, but client2 (which never knocked) connects")
			if err := d.knock(ctx, client); err != nil {
				return err
			}
			d.waitN(armed.From(outside), 2, 3*time.Second, "doormand opened a second door for %s", outside)
			conn2 := d.dial(client2)
			r.Check(conn2 != nil, "client2's connection got through client's door")
			if conn2 != nil {
				conn2.Close()
			}
			r.Step("this shows: a classic knock opens a door for a source address; behind NAT every inside host " +
				"has the router's address, so doormand cannot tell client from client2, and any host behind the " +
				"router can use a door another one knocked for")
			return nil
		},
	}
}

// lossyScenario plays on one impaired link, relayed in userspace:
//
//	+--------+ tap  50 ms each way, 30 % loss,  tap +--------+
//	| client |==========================================| server |
//	+--------+ .1   every frame duplicated          .2 +--------+
//
// The client retries with a fresh knock each time until it gets in; every
// knock that arrives arrives twice, and the copy is refused as a replay.
func lossyScenario() Scenario {
	return Scenario{
		Name:        "lossy",
		Description: "over a slow, lossy, duplicating link fresh knocks get in and duplicate knocks open one door",
		Tags:        []string{TagNetwork},
		Needs:       []Need{NeedNftables, NeedTun},
		Run: func(ctx context.Context, r *Run) error {
			client, err := r.Net.AddHost("client")
			if err != nil {
				return err
			}
			server, err := r.Net.AddHost("server")
			if err != nil {
				return err
			}
			l, err := r.Net.Link(client, server, netsim.LinkOptions{Delay: 50 * time.Millisecond, Loss: 30, Duplicate: 100})
			if err != nil {
				return err
			}
			r.Step("link client %s <-> server %s: 50 ms delay, 30%% loss, every frame duplicated", client.Addr4(), server.Addr4())
			d, err := setupDoorman(ctx, r, server, l.B.Name, l.A.Prefix4)
			if err != nil {
				return err
			}
			svc := netip.AddrPortFrom(server.Addr4(), scenSvcPort)
			var conn net.Conn
			tries := 0
			for tries < scenLossyTries && conn == nil {
				if err := ctx.Err(); err != nil {
					return err
				}
				tries++
				if err := d.knockAs(ctx, client, scenGuest, scenSecret, scenSvcPort); err != nil {
					return err
				}
				conn = dt.Dial(client, svc, 1500*time.Millisecond, 1500*time.Millisecond)
				if conn == nil {
					r.Step("try %d: no way in yet", tries)
				}
			}
			if !r.Check(conn != nil, "client got in after %d tries (at most %d)", tries, scenLossyTries) {
				return nil
			}
			conn.Close()
			if d.events != nil {
				nAccepted := d.Count(accepted)
				r.Check(nAccepted >= 1 && nAccepted <= tries, "doormand accepted %d of %d knocks", nAccepted, tries)
				_, err = d.Wait(replayed, nAccepted, 3*time.Second)
				r.Check(err == nil && d.Count(replayed) == nAccepted,
					"each accepted knock's duplicate was refused as a replay (%d accepted, %d replays)", nAccepted, d.Count(replayed))
				doorsDone := pollUntil(3*time.Second, func() bool { return doorsOpened(d) >= nAccepted })
				r.Check(doorsDone && doorsOpened(d) == nAccepted, "one door per accepted knock (%d doors)", doorsOpened(d))
			} else {
				d.checkEvents(nil, "each accepted knock's duplicate was refused as a replay, one door per accepted knock")
			}

			// Doors of earlier tries whose SYNs were all lost are still
			// broad until waitfor; let them expire so the duplicate test
			// below counts only its own door.
			r.Step("wait for the doors of earlier tries to close")
			if _, why, _ := d.countDoors(ctx); why != "" {
				r.Unsupported(why, "every earlier door closed")
				time.Sleep(scenWaitfor + time.Second)
			} else if !r.Check(pollUntil(scenWaitfor+3*time.Second, func() bool { n, err := d.doorElements(ctx); return err == nil && n == 0 }),
				"every earlier door closed") {
				return nil
			}
			r.Step("turn the loss off; the link still duplicates every frame")
			if err := l.SetLoss(0); err != nil {
				return err
			}
			p, err := d.payload(ctx)
			if err != nil {
				return err
			}
			a0, b0, p0 := d.Count(accepted), doorsOpened(d), d.Count(replayed)
			if err := d.send(client, p); err != nil {
				return err
			}
			r.Step("re-send the same bytes once more (a client retrying with the same knock)")
			if err := d.send(client, p); err != nil {
				return err
			}
			d.waitN(replayed, p0+3, 3*time.Second, "three of the four copies refused as replays")
			if d.events != nil {
				// The door is reported armed once its element is in the
				// kernel, after the knock event: wait for it, or more.
				pollUntil(3*time.Second, func() bool { return doorsOpened(d) > b0 })
			}
			d.checkEvents(func() bool { return d.Count(accepted) == a0+1 }, "exactly one copy accepted (%d new)", d.Count(accepted)-a0)
			d.checkEvents(func() bool { return doorsOpened(d) == b0+1 }, "exactly one door opened (%d new)", doorsOpened(d)-b0)
			r.Step("connect from client twice")
			c1 := d.dial(client)
			r.Check(c1 != nil, "first connection got through")
			c2 := d.dial(client)
			if why := d.gap("6.2/single-connection"); why != "" {
				r.Unsupported(why, "second connection refused: the copies opened no second door (it got through: %v)", c2 != nil)
			} else {
				r.Check(c2 == nil, "second connection refused: the copies opened no second door")
			}
			for _, c := range []net.Conn{c1, c2} {
				if c != nil {
					c.Close()
				}
			}
			return nil
		},
	}
}

// crashScenario kills doormand with SIGKILL while doors are open, on the
// scenarios' LAN:
//
//	+--------+    +--------+
//	| server |    | client |
//	+--------+    +--------+
//	    |  .1         | .2
//	----+-------------+---- lan 198.18.1.0/24
func crashScenario() Scenario {
	return Scenario{
		Name:        "crash",
		Description: "after kill -9 and a restart no stale door is left and earlier knocks are still replays",
		Tags:        []string{TagQuick},
		Needs:       []Need{NeedNftables},
		Run: func(ctx context.Context, r *Run) error {
			t, d, err := lanWith(ctx, r, "client")
			if err != nil {
				return err
			}
			client := t.others["client"]
			r.Step("capture two knocks with knock --dry-run")
			p1, err := d.payload(ctx)
			if err != nil {
				return err
			}
			p2, err := d.payload(ctx)
			if err != nil {
				return err
			}
			if err := d.send(client, p1); err != nil {
				return err
			}
			if !d.waitN(armed, 1, 3*time.Second, "first knock opened a door") {
				return nil
			}
			r.Step("connect from client and keep the connection")
			conn := d.dial(client)
			if !r.Check(conn != nil, "connection through the first door") {
				return nil
			}
			defer conn.Close()
			if err := d.send(client, p2); err != nil {
				return err
			}
			d.waitN(armed, 2, 3*time.Second, "second knock opened a second door, left armed")
			d.checkDoors(ctx, func(n int) bool { return n >= 2 }, "two doors in the firewall's sets")
			if err := d.kill9(); err != nil {
				return err
			}
			d.checkDoors(ctx, func(n int) bool { return n >= 2 }, "after kill -9 the doors are still there, open with nobody watching")
			if err := d.restart(ctx); err != nil {
				return err
			}
			// Ready means the firewall is in place: the stale doors are gone by then.
			d.checkDoors(ctx, func(n int) bool { return n == 0 }, "restarted daemon removed the stale doors")
			if d.built != nil {
				pid, _ := os.ReadFile(filepath.Join(d.built.Dir(), "pid"))
				r.Check(string(pid) == strconv.Itoa(d.Pid())+"\n", "restarted doormand replaced the stale pid file (it holds %q, doormand is %d)", pid, d.Pid())
			} else {
				r.Unsupported("where the pid file is, is the adapter's", "restarted daemon replaced the stale pid file")
			}
			d.checkClosed(client)
			r.Step("send both pre-crash knocks again")
			if err := d.send(client, p1); err != nil {
				return err
			}
			if err := d.send(client, p2); err != nil {
				return err
			}
			d.waitN(replayed, 2, 3*time.Second, "both refused as replays after the restart")
			d.checkEvents(func() bool { return d.Count(accepted) == 2 }, "only the two knocks before the crash were ever accepted")
			d.checkClosed(client)
			return nil
		},
	}
}

// reloadScenario changes the guest list under a running doormand, on the
// scenarios' LAN:
//
//	+--------+    +--------+    +---------+
//	| server |    | client |    | client2 |
//	+--------+    +--------+    +---------+
//	    |  .1         | .2 alice     | .3 bob
//	----+-------------+--------------+---- lan 198.18.1.0/24
func reloadScenario() Scenario {
	return Scenario{
		Name:        "reload",
		Description: "SIGHUP loads an added guest at once and keeps the old guest list when the new one is broken",
		Tags:        []string{TagQuick},
		Needs:       []Need{NeedNftables},
		Run: func(ctx context.Context, r *Run) error {
			t, d, err := lanWith(ctx, r, "client", "client2")
			if err != nil {
				return err
			}
			client, client2 := t.others["client"], t.others["client2"]
			lan := t.lan.Prefix4()
			if err := d.knockAs(ctx, client2, scenGuest2, scenSecret2, scenSvcPort); err != nil {
				return err
			}
			d.waitN(dt.Rejected("unknown-guest").From(client2.Addr4()), 1, 3*time.Second, "bob is not a guest yet: unknown-guest")
			d.checkClosed(client2)

			alice := adapter.Guest{Name: scenGuest, Secret: scenSecret, Ports: []int{scenSvcPort}, Networks: []string{lan.String()}}
			bob := adapter.Guest{Name: scenGuest2, Secret: scenSecret2, Ports: []int{scenSvcPort}, Networks: []string{lan.String()}}
			if err := d.dut.SetGuests([]adapter.Guest{alice, bob}); err != nil {
				return err
			}
			r.Step("guest list now: alice and bob; reload (SIGHUP)")
			if err := d.reload(); err != nil {
				return err
			}
			d.checkReload(true, "the daemon reloaded")
			d.tryDoor(ctx, client2, scenGuest2, scenSecret2)

			// A guest with no address: every implementation must refuse
			// the whole list (CLASSIC-9.4/2).
			bob.Networks = nil
			if err := d.dut.SetGuests([]adapter.Guest{alice, bob}); err != nil {
				return err
			}
			r.Step("guest list now broken (bob's record has no address); reload (SIGHUP)")
			if err := d.reload(); err != nil {
				return err
			}
			d.checkReload(false, "the daemon refused the broken list")
			d.checkEvents(func() bool { return d.Count(func(e dt.Event) bool { return e.Kind == dt.KindReload && e.OK }) == 1 }, "the broken list was not loaded")
			d.tryDoor(ctx, client, scenGuest, scenSecret)
			d.tryDoor(ctx, client2, scenGuest2, scenSecret2)
			r.Check(d.dut.Alive(), "the daemon still running")
			return nil
		},
	}
}

// reload makes the daemon re-read its guest list; a daemon that cannot
// (no reload signal in its adapter) makes the scenario unsupported.
func (d *doorman) reload() error {
	err := d.dut.Reload(3 * time.Second)
	if errors.Is(err, ErrUnsupported) {
		return err
	}
	d.r.Check(err == nil, "the daemon answered the reload signal (%v)", err)
	if !d.dut.Alive() {
		return errors.New("the daemon is gone after the reload signal")
	}
	return nil
}

// checkReload records a check that the last reload event says ok, with
// its error text; unsupported without an event stream.
func (d *doorman) checkReload(ok bool, what string) {
	ev, _ := d.Last(dt.IsKind(dt.KindReload))
	d.checkEvents(func() bool { return ev.OK == ok && (ok || ev.Error != "") }, "%s (reload event: ok %v, error %q)", what, ev.OK, ev.Error)
}

// tryDoor knocks from h as guest, connects and closes, checking that the
// knock was accepted and the connection got through.
func (d *doorman) tryDoor(ctx context.Context, h *netsim.Host, guest, secret string) {
	ok, doors := accepted.From(h.Addr4()), armed.From(h.Addr4())
	nAccepted, nDoors := d.Count(ok), d.Count(doors)
	if err := d.knockAs(ctx, h, guest, secret, scenSvcPort); err != nil {
		d.r.Check(false, "knock as %s: %v", guest, err)
		return
	}
	d.waitN(ok, nAccepted+1, 3*time.Second, "%s's knock accepted", guest)
	// The door is in force once doormand reports it armed, not before.
	d.waitN(doors, nDoors+1, 3*time.Second, "door opened for %s", guest)
	c := d.dial(h)
	d.r.Check(c != nil, "%s's connection from %s got through", guest, h.Name())
	if c != nil {
		c.Close()
	}
}
