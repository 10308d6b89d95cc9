//go:build linux

package sim

import (
	"bytes"
	"context"
	"net/netip"
	"time"
)

func happyScenario() Scenario {
	return Scenario{
		Name:        "happy",
		Description: "a knock opens one connection for the knocking client only, then the door closes",
		Run: func(ctx context.Context, r *Run) error {
			t, d, err := lanWith(ctx, r, "client", "bystander")
			if err != nil {
				return err
			}
			client, bystander := t.others["client"], t.others["bystander"]
			d.checkClosed(client)
			d.checkClosed(bystander)
			if err := d.knock(ctx, client); err != nil {
				return err
			}
			r.Check(d.waitLog(`msg="knock accepted"`, 1, 3*time.Second), "doormand logged the knock as accepted")
			r.Check(d.waitLog(`msg="door broad"`, 1, 3*time.Second), "doormand opened the door")
			d.checkClosed(bystander)
			r.Step("connect from client")
			conn := d.dial(client)
			if !r.Check(conn != nil, "connection from client got through and the service greeted it") {
				return nil
			}
			r.Step("connect again from client (another source port)")
			c2 := d.dial(client)
			if c2 != nil {
				c2.Close()
			}
			r.Check(c2 == nil, "second connection from client refused")
			r.Step("close the connection")
			conn.Close()
			r.Check(d.waitLog("why=connection-ended", 1, 4*time.Second), "doormand closed the door after the connection ended (why=connection-ended)")
			d.checkClosed(client)
			return nil
		},
	}
}

func replayScenario() Scenario {
	return Scenario{
		Name:        "replay",
		Description: "a sniffed knock is accepted once, then refused replayed from the client, spoofed from another allowed address and from a foreign one, also after a restart",
		Run: func(ctx context.Context, r *Run) error {
			t, d, err := replayLAN(ctx, r)
			if err != nil {
				return err
			}
			const (
				replay  = `msg="PROBABLE REPLAY ATTEMPT"`
				badAddr = `msg="guest not registered for address"`
				ok      = `msg="knock accepted"`
			)
			sniffEnd, serverEnd := t.lan.End(t.sniffer), t.lan.End(t.server)
			sn, err := openSniffer(sniffEnd)
			if err != nil {
				return err
			}
			defer sn.Close()
			r.Step("sniffer listens on %s in promiscuous mode (AF_PACKET)", sniffEnd.Name)
			d.checkClosed(t.client)

			if err := d.knock(ctx, t.client); err != nil {
				return err
			}
			u, err := sn.udpTo(t.client.Addr4(), t.server.Addr4(), scenKnockPort, 3*time.Second)
			if err != nil {
				r.Check(false, "sniffer captured the client's knock off the wire: %v", err)
				return nil
			}
			r.Check(true, "sniffer captured the client's knock off the wire")
			r.Step("sniffed %d-byte payload %s -> %s, frame %s -> %s", len(u.payload), u.src, u.dst, u.srcMAC, u.dstMAC)
			r.Check(bytes.Equal(u.dstMAC, serverEnd.MAC) && !bytes.Equal(u.dstMAC, sniffEnd.MAC),
				"the frame was addressed to the server's MAC %s, not the sniffer's %s: the hub flooded it", serverEnd.MAC, sniffEnd.MAC)
			r.Check(d.waitLines(1, 3*time.Second, ok, srcField(t.client.Addr4())), "the real knock was accepted")
			r.Check(d.waitLog(`msg="door broad"`, 1, 3*time.Second), "doormand opened the door")
			r.Step("connect from client through the door")
			conn := d.dial(t.client)
			r.Check(conn != nil, "connection from client got through")
			if conn != nil {
				conn.Close()
			}
			r.Check(d.waitLog(`msg="door closed"`, 1, scenWaitfor+3*time.Second), "door closed again")
			d.checkClosed(t.client)

			r.Step("replay 1: the sniffed payload from the client itself")
			if err := d.send(t.client, u.payload); err != nil {
				return err
			}
			r.Check(d.waitLines(1, 3*time.Second, replay, srcField(t.client.Addr4())), "replay from client refused: PROBABLE REPLAY ATTEMPT logged for %s", t.client.Addr4())
			d.checkClosed(t.client)

			spoof := netip.AddrPortFrom(t.client2.Addr4(), u.src.Port())
			r.Step("replay 2: the sniffer sends the payload with a spoofed source %s (client2, allowed), headers built by hand (IP_HDRINCL)", spoof)
			if err := sendSpoofedUDP(t.sniffer, spoof, netip.AddrPortFrom(t.server.Addr4(), scenKnockPort), u.payload); err != nil {
				return err
			}
			r.Check(d.waitLines(1, 3*time.Second, replay, srcField(t.client2.Addr4())), "spoofed replay refused: PROBABLE REPLAY ATTEMPT logged for %s", t.client2.Addr4())
			d.checkClosed(t.client2)

			r.Step("replay 3: the sniffed payload from foreign (%s), outside the guest's %s", t.foreign.Addr4(), t.allowed)
			if err := d.send(t.foreign, u.payload); err != nil {
				return err
			}
			r.Step("the checks run address, then MAC, then replay: a foreign source fails the guest list's address check before the replay store is consulted")
			r.Check(d.waitLines(1, 3*time.Second, badAddr, srcField(t.foreign.Addr4())), "replay from foreign refused: \"guest not registered for address\" logged for %s", t.foreign.Addr4())
			r.Check(d.countLines(replay, srcField(t.foreign.Addr4())) == 0, "foreign refused by the address check, not the replay check")
			d.checkClosed(t.foreign)

			if err := d.stop(); err != nil {
				r.Check(false, "doormand exited cleanly on SIGTERM: %v", err)
			}
			if err := d.start(ctx); err != nil {
				return err
			}
			r.Step("after the restart: the sniffed payload from the client")
			if err := d.send(t.client, u.payload); err != nil {
				return err
			}
			r.Check(d.waitLines(2, 3*time.Second, replay, srcField(t.client.Addr4())), "replay after restart refused: PROBABLE REPLAY ATTEMPT logged for %s", t.client.Addr4())
			d.checkClosed(t.client)
			r.Check(d.count(ok) == 1, "only the real knock was ever accepted")
			return nil
		},
	}
}

func timeoutScenario() Scenario {
	return Scenario{
		Name:        "timeout",
		Description: "a door nobody uses closes after waitfor",
		Run: func(ctx context.Context, r *Run) error {
			t, d, err := lanWith(ctx, r, "client")
			if err != nil {
				return err
			}
			client := t.others["client"]
			if err := d.knock(ctx, client); err != nil {
				return err
			}
			t0 := time.Now()
			if !r.Check(d.waitLog(`msg="door broad"`, 1, 3*time.Second), "doormand opened the door") {
				return nil
			}
			r.Step("wait, never connecting")
			closed := d.waitLog("why=waitfor", 1, scenWaitfor+3*time.Second)
			took := time.Since(t0)
			r.Check(closed, "door closed with why=waitfor")
			r.Check(took > scenWaitfor-time.Second && took < scenWaitfor+time.Second,
				"door closed %.1fs after the knock (waitfor %v ±1s)", took.Seconds(), scenWaitfor)
			d.checkClosed(client)
			return nil
		},
	}
}
