//go:build linux

package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// networkScenarios are the scenarios about topology and daemon lifecycle:
// isolation, nat, lossy, crash, reload.
func networkScenarios() []Scenario {
	return []Scenario{isolationScenario(), natScenario(), lossyScenario(), crashScenario(), reloadScenario()}
}

// Constants of the network scenarios: a second service nobody may knock
// for, a second guest, and the bounds of the lossy retry loop.
const (
	scenOtherPort   = 80
	scenGuest2      = "bob"
	scenSecret2     = "b0bsKnock"
	scenLossyTries  = 20
	scenReplayMsg   = "PROBABLE REPLAY ATTEMPT"
	scenAcceptedMsg = `msg="knock accepted"`
	scenBroadMsg    = `msg="door broad"`
)

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
		Run: func(ctx context.Context, r *Run) error {
			t, d, err := lanWith(ctx, r, "client", "bystander")
			if err != nil {
				return err
			}
			client, bystander := t.others["client"], t.others["bystander"]
			other := netip.AddrPortFrom(t.server.Addr4(), scenOtherPort)
			if err := serveGreeting(ctx, t.server, scenOtherPort); err != nil {
				return err
			}
			r.Step("second service on the server at :%d; no guest is registered for it", scenOtherPort)
			checkClosedAt(r, client, other)
			if err := d.knock(ctx, client); err != nil {
				return err
			}
			r.Check(d.waitLog(scenAcceptedMsg, 1, 3*time.Second), "doormand logged the knock as accepted")
			if !r.Check(d.waitLog(scenBroadMsg, 1, 3*time.Second), "doormand opened the door") {
				return nil
			}
			n, err := d.doorRules(ctx)
			r.Check(n == 1, "exactly one door rule in the firewall (nft shows %d doorman# rules, err %v)", n, err)
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
			r.Check(d.waitLog("guest not registered for port", 1, 3*time.Second), `doormand refused it: "guest not registered for port"`)
			r.Check(d.count(scenAcceptedMsg) == 1, "no further knock was accepted")
			checkClosedAt(r, client, other)
			r.Step("close the connection")
			conn.Close()
			r.Check(d.waitLog("why=connection-ended", 1, 4*time.Second), "door closed after the connection ended")
			n, err = d.doorRules(ctx)
			r.Check(n == 0, "no door rule left in the firewall (nft shows %d doorman# rules, err %v)", n, err)
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
			for _, h := range []*Host{server, stranger} {
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
			if !r.Check(d.waitLog(scenAcceptedMsg, 1, 3*time.Second), "doormand accepted the knock") {
				return nil
			}
			r.Check(d.waitLog(scenBroadMsg, 1, 3*time.Second), "doormand opened the door")
			src := d.knockSources()
			r.Check(len(src) == 1 && src[0] == outside.String(),
				"doormand logged the router's outside address %s as the knock source (logged: %v)", outside, src)
			r.Check(!strings.Contains(d.log(), "src="+client.Addr4().String()+" "), "doormand never saw client's own address %s", client.Addr4())
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
			r.Check(d.waitLog("guest not registered for address", 1, 3*time.Second), `doormand refused it: "guest not registered for address"`)
			d.checkClosed(stranger)
			r.Step("client knocks again, but client2 (which never knocked) connects")
			if err := d.knock(ctx, client); err != nil {
				return err
			}
			r.Check(d.waitLog(scenBroadMsg, 2, 3*time.Second), "doormand opened a second door for %s", outside)
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
		Run: func(ctx context.Context, r *Run) error {
			client, err := r.Net.AddHost("client")
			if err != nil {
				return err
			}
			server, err := r.Net.AddHost("server")
			if err != nil {
				return err
			}
			l, err := r.Net.Link(client, server, LinkOptions{Delay: 50 * time.Millisecond, Loss: 30, Duplicate: 100})
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
				conn = dialAt(client, svc, 1500*time.Millisecond, 1500*time.Millisecond)
				if conn == nil {
					r.Step("try %d: no way in yet", tries)
				}
			}
			if !r.Check(conn != nil, "client got in after %d tries (at most %d)", tries, scenLossyTries) {
				return nil
			}
			conn.Close()
			accepted := d.count(scenAcceptedMsg)
			r.Check(accepted >= 1 && accepted <= tries, "doormand accepted %d of %d knocks", accepted, tries)
			r.Check(d.waitLog(scenReplayMsg, accepted, 3*time.Second) && d.count(scenReplayMsg) == accepted,
				"each accepted knock's duplicate was refused as a replay (%d accepted, %d replays)", accepted, d.count(scenReplayMsg))
			r.Check(d.waitLog(scenBroadMsg, accepted, 3*time.Second) && d.count(scenBroadMsg) == accepted,
				"one door per accepted knock (%d doors)", d.count(scenBroadMsg))

			// Doors of earlier tries whose SYNs were all lost are still
			// broad until waitfor; let them expire so the duplicate test
			// below counts only its own door.
			r.Step("wait for the doors of earlier tries to close")
			if !r.Check(pollUntil(scenWaitfor+3*time.Second, func() bool { n, err := d.doorRules(ctx); return err == nil && n == 0 }),
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
			a0, b0, p0 := accepted, d.count(scenBroadMsg), d.count(scenReplayMsg)
			if err := d.send(client, p); err != nil {
				return err
			}
			r.Step("re-send the same bytes once more (a client retrying with the same knock)")
			if err := d.send(client, p); err != nil {
				return err
			}
			r.Check(d.waitLog(scenReplayMsg, p0+3, 3*time.Second), "three of the four copies refused as replays")
			r.Check(d.count(scenAcceptedMsg) == a0+1, "exactly one copy accepted (%d new)", d.count(scenAcceptedMsg)-a0)
			r.Check(d.count(scenBroadMsg) == b0+1, "exactly one door opened (%d new)", d.count(scenBroadMsg)-b0)
			r.Step("connect from client twice")
			c1 := d.dial(client)
			r.Check(c1 != nil, "first connection got through")
			c2 := d.dial(client)
			r.Check(c2 == nil, "second connection refused: the copies opened no second door")
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
			if !r.Check(d.waitLog(scenBroadMsg, 1, 3*time.Second), "first knock opened a door") {
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
			r.Check(d.waitLog(scenBroadMsg, 2, 3*time.Second), "second knock opened a second door, left broad")
			n, err := d.doorRules(ctx)
			r.Check(n >= 2, "door rules in the firewall: %d (err %v)", n, err)
			if err := d.kill9(); err != nil {
				return err
			}
			n, err = d.doorRules(ctx)
			r.Check(n >= 2, "after kill -9 the door rules are still there, open with nobody watching: %d (err %v)", n, err)
			if err := d.start(ctx); err != nil {
				return err
			}
			gone := pollUntil(3*time.Second, func() bool { n, err = d.doorRules(ctx); return err == nil && n == 0 })
			r.Check(gone, "restarted doormand removed the stale door rules (nft shows %d doorman# rules, err %v)", n, err)
			r.Check(d.count("replacing stale pid file") == 1, "restarted doormand replaced the stale pid file")
			d.checkClosed(client)
			r.Step("send both pre-crash knocks again")
			if err := d.send(client, p1); err != nil {
				return err
			}
			if err := d.send(client, p2); err != nil {
				return err
			}
			r.Check(d.waitLog(scenReplayMsg, 2, 3*time.Second), "both refused after the restart: %s logged twice", scenReplayMsg)
			r.Check(d.count(scenAcceptedMsg) == 2, "only the two knocks before the crash were ever accepted")
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
			r.Check(d.waitLog(`msg="unknown guest"`, 1, 3*time.Second), "bob is not a guest yet: %q logged", "unknown guest")
			d.checkClosed(client2)

			two := fmt.Sprintf("%s %s %d %s\n%s %s %d %s\n",
				scenGuest, scenSecret, scenSvcPort, lan, scenGuest2, scenSecret2, scenSvcPort, lan)
			if err := d.writeGuests(two); err != nil {
				return err
			}
			r.Step("guest list now: alice and bob; SIGHUP doormand")
			if err := d.sendSignal(syscall.SIGHUP); err != nil {
				return err
			}
			r.Check(d.waitLog(`msg=reloaded`, 1, 3*time.Second), "doormand logged the reload")
			d.tryDoor(ctx, client2, scenGuest2, scenSecret2)

			broken := fmt.Sprintf("%s %s %d %s\n%s %s %d\n",
				scenGuest, scenSecret, scenSvcPort, lan, scenGuest2, scenSecret2, scenSvcPort)
			if err := d.writeGuests(broken); err != nil {
				return err
			}
			r.Step("guest list now broken (bob's record has no address); SIGHUP doormand")
			if err := d.sendSignal(syscall.SIGHUP); err != nil {
				return err
			}
			r.Check(d.waitLog("reload failed: guest list kept as it was", 1, 3*time.Second), "doormand logged the reload error")
			r.Check(d.count(`msg=reloaded`) == 1, "the broken list was not loaded")
			d.tryDoor(ctx, client, scenGuest, scenSecret)
			d.tryDoor(ctx, client2, scenGuest2, scenSecret2)
			r.Check(d.sendSignal(0) == nil, "doormand still running")
			return nil
		},
	}
}

// tryDoor knocks from h as guest, connects and closes, checking that the
// knock was accepted and the connection got through.
func (d *doorman) tryDoor(ctx context.Context, h *Host, guest, secret string) {
	accepted, doors := d.count(scenAcceptedMsg), d.count(scenBroadMsg)
	if err := d.knockAs(ctx, h, guest, secret, scenSvcPort); err != nil {
		d.r.Check(false, "knock as %s: %v", guest, err)
		return
	}
	d.r.Check(d.waitLog(scenAcceptedMsg, accepted+1, 3*time.Second), "%s's knock accepted", guest)
	// The door's rule is in force once doormand logs it broad, not before.
	d.r.Check(d.waitLog(scenBroadMsg, doors+1, 3*time.Second), "door opened for %s", guest)
	c := d.dial(h)
	d.r.Check(c != nil, "%s's connection from %s got through", guest, h.Name())
	if c != nil {
		c.Close()
	}
}

// knockAs runs the knock client in h as guest with secret, asking for port.
func (d *doorman) knockAs(ctx context.Context, h *Host, guest, secret string, port int) error {
	d.r.Step("knock from %s (%s) as %s for port %d", h.Name(), h.Addr4(), guest, port)
	out, err := h.Command(ctx, filepath.Join(d.r.Bin, "knock"), "-g", guest, "-s", secret,
		d.server.Addr4().String(), fmt.Sprint(port)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("knock: %w: %s", err, out)
	}
	return nil
}

// writeGuests replaces the guest list doormand reads.
func (d *doorman) writeGuests(content string) error {
	return os.WriteFile(filepath.Join(d.r.Dir, "guests"), []byte(content), 0o600)
}

// sendSignal sends sig to the running doormand.
func (d *doorman) sendSignal(sig syscall.Signal) error {
	if d.daemon == nil {
		return errors.New("doormand is not running")
	}
	// `ip netns exec` execs doormand, so the process is doormand itself.
	return d.daemon.Process.Signal(sig)
}

// kill9 kills doormand with SIGKILL, leaving whatever it had set up.
func (d *doorman) kill9() error {
	if d.daemon == nil {
		return errors.New("doormand is not running")
	}
	d.r.Step("kill -9 doormand")
	if err := d.daemon.Process.Kill(); err != nil {
		return fmt.Errorf("kill doormand: %w", err)
	}
	defer func() { d.daemon = nil }()
	select {
	case <-d.waitErr:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("doormand did not die within 10s of SIGKILL")
	}
}

// doorRules counts the door rules (comment "doorman#<id>") in doormand's
// nftables table in the server.
func (d *doorman) doorRules(ctx context.Context) (int, error) {
	out, err := d.server.Command(ctx, "nft", "list", "table", "inet", "doorman").CombinedOutput()
	if err != nil {
		return -1, fmt.Errorf("nft list table inet doorman: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return strings.Count(string(out), `comment "doorman#`), nil
}

// knockSources returns the src of every accepted knock in the log.
func (d *doorman) knockSources() []string {
	var srcs []string
	for _, line := range strings.Split(d.log(), "\n") {
		if !strings.Contains(line, scenAcceptedMsg) {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "src="); ok {
				srcs = append(srcs, v)
			}
		}
	}
	return srcs
}

// serveGreeting starts a greeting service like the doorman's on port in
// h; it stops when ctx ends or the namespace goes away.
func serveGreeting(ctx context.Context, h *Host, port int) error {
	var l net.Listener
	err := h.Do(func() error {
		var err error
		l, err = net.Listen("tcp", netip.AddrPortFrom(h.Addr4(), uint16(port)).String())
		return err
	})
	if err != nil {
		return fmt.Errorf("service on :%d: %w", port, err)
	}
	context.AfterFunc(ctx, func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("hello\n"))
				buf := make([]byte, 64)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return nil
}

// dialAt connects from h to dst within connect and reads the greeting
// within read; it returns nil if either fails.
func dialAt(h *Host, dst netip.AddrPort, connect, read time.Duration) net.Conn {
	var c net.Conn
	h.Do(func() error {
		var err error
		if c, err = net.DialTimeout("tcp", dst.String(), connect); err != nil {
			c = nil
			return err
		}
		c.SetReadDeadline(time.Now().Add(read))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "hello\n" {
			c.Close()
			c = nil
			return nil
		}
		c.SetReadDeadline(time.Time{})
		return nil
	})
	return c
}

// checkClosedAt records a check that dst is closed from h.
func checkClosedAt(r *Run, h *Host, dst netip.AddrPort) bool {
	c := dialAt(h, dst, time.Second, 2*time.Second)
	if c != nil {
		c.Close()
	}
	return r.Check(c == nil, "port %d closed from %s", dst.Port(), h.Name())
}

// pollUntil polls cond every 50ms until it holds or within has passed.
func pollUntil(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
