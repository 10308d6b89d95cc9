//go:build linux

package sim

import (
	"bytes"
	"context"
	"net/netip"
	"time"

	dt "github.com/doorman-project/doorman/internal/doormandtest"
)

func happyScenario() Scenario {
	return Scenario{
		Name:        "happy",
		Description: "a knock opens one connection for the knocking client only, then the door closes",
		Tags:        []string{TagQuick},
		Needs:       []Need{NeedNftables},
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
			d.waitN(dt.Accepted().From(client.Addr4()), 1, 3*time.Second, "doormand accepted the knock")
			d.waitN(dt.DoorState(dt.StateArmed).From(client.Addr4()), 1, 3*time.Second, "doormand opened the door")
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
			if why := d.gap("6.2/single-connection"); why != "" {
				r.Unsupported(why, "second connection from client refused (it got through: %v)", c2 != nil)
			} else {
				r.Check(c2 == nil, "second connection from client refused")
			}
			r.Step("close the connection")
			conn.Close()
			d.waitN(dt.Closed("connection-ended"), 1, 4*time.Second, "doormand closed the door after the connection ended (connection-ended)")
			d.checkClosed(client)
			return nil
		},
	}
}

func replayScenario() Scenario {
	return Scenario{
		Name:        "replay",
		Description: "a sniffed knock is accepted once, then refused replayed from the client, spoofed from another allowed address and from a foreign one, also after a restart",
		Tags:        []string{TagQuick},
		Needs:       []Need{NeedNftables, NeedPacket},
		Run: func(ctx context.Context, r *Run) error {
			t, d, err := replayLAN(ctx, r)
			if err != nil {
				return err
			}
			replay, badAddr := dt.Rejected("replay"), dt.Rejected("address-not-allowed")
			sniffEnd, serverEnd := t.lan.End(t.sniffer), t.lan.End(t.server)
			sn, err := sniffEnd.Sniff()
			if err != nil {
				return err
			}
			defer sn.Close()
			r.Step("sniffer listens on %s in promiscuous mode (AF_PACKET)", sniffEnd.Name)
			d.checkClosed(t.client)

			if err := d.knock(ctx, t.client); err != nil {
				return err
			}
			u, err := sn.UDP(t.client.Addr4(), t.server.Addr4(), scenKnockPort, 3*time.Second)
			if err != nil {
				r.Check(false, "sniffer captured the client's knock off the wire: %v", err)
				return nil
			}
			r.Check(true, "sniffer captured the client's knock off the wire")
			r.Step("sniffed %d-byte payload %s -> %s, frame %s -> %s", len(u.Payload), u.Src, u.Dst, u.SrcMAC, u.DstMAC)
			r.Check(bytes.Equal(u.DstMAC, serverEnd.MAC) && !bytes.Equal(u.DstMAC, sniffEnd.MAC),
				"the frame was addressed to the server's MAC %s, not the sniffer's %s: the hub flooded it", serverEnd.MAC, sniffEnd.MAC)
			d.waitN(dt.Accepted().From(t.client.Addr4()), 1, 3*time.Second, "the real knock was accepted")
			d.waitN(dt.DoorState(dt.StateArmed), 1, 3*time.Second, "doormand opened the door")
			r.Step("connect from client through the door")
			conn := d.dial(t.client)
			r.Check(conn != nil, "connection from client got through")
			if conn != nil {
				conn.Close()
			}
			d.waitN(dt.Closed(""), 1, scenWaitfor+3*time.Second, "door closed again")
			d.checkClosed(t.client)

			r.Step("replay 1: the sniffed payload from the client itself")
			if err := d.send(t.client, u.Payload); err != nil {
				return err
			}
			d.waitN(replay.From(t.client.Addr4()), 1, 3*time.Second, "replay from client %s refused as a replay", t.client.Addr4())
			d.checkClosed(t.client)

			spoof := netip.AddrPortFrom(t.client2.Addr4(), u.Src.Port())
			r.Step("replay 2: the sniffer sends the payload with a spoofed source %s (client2, allowed), headers built whole (IP_HDRINCL)", spoof)
			if err := t.sniffer.SendSpoofedUDP(spoof, netip.AddrPortFrom(t.server.Addr4(), scenKnockPort), u.Payload); err != nil {
				return err
			}
			d.waitN(replay.From(t.client2.Addr4()), 1, 3*time.Second, "spoofed replay from %s refused as a replay", t.client2.Addr4())
			d.checkClosed(t.client2)

			r.Step("replay 3: the sniffed payload from foreign (%s), outside the guest's %s", t.foreign.Addr4(), t.allowed)
			if err := d.send(t.foreign, u.Payload); err != nil {
				return err
			}
			r.Step("the checks run address, then MAC, then replay: a foreign source fails the guest list's address check before the replay store is consulted")
			d.waitN(badAddr.From(t.foreign.Addr4()), 1, 3*time.Second, "replay from foreign %s refused: address-not-allowed", t.foreign.Addr4())
			d.checkEvents(func() bool { return d.Count(replay.From(t.foreign.Addr4())) == 0 }, "foreign refused by the address check, not the replay check")
			d.checkClosed(t.foreign)

			if err := d.stop(); err != nil {
				r.Check(false, "doormand exited cleanly on SIGTERM: %v", err)
			}
			if err := d.restart(ctx); err != nil {
				return err
			}
			r.Step("after the restart: the sniffed payload from the client")
			if err := d.send(t.client, u.Payload); err != nil {
				return err
			}
			d.waitN(replay.From(t.client.Addr4()), 2, 3*time.Second, "replay after restart from %s refused as a replay", t.client.Addr4())
			d.checkClosed(t.client)
			d.checkEvents(func() bool { return d.Count(dt.Accepted()) == 1 }, "only the real knock was ever accepted")
			return nil
		},
	}
}

func timeoutScenario() Scenario {
	return Scenario{
		Name:        "timeout",
		Description: "a door nobody uses closes after waitfor",
		Tags:        []string{TagQuick},
		Needs:       []Need{NeedNftables},
		Run: func(ctx context.Context, r *Run) error {
			t, d, err := lanWith(ctx, r, "client")
			if err != nil {
				return err
			}
			client := t.others["client"]
			if err := d.knock(ctx, client); err != nil {
				return err
			}
			if !d.waitN(dt.DoorState(dt.StateArmed), 1, 3*time.Second, "doormand opened the door") {
				return nil
			}
			r.Step("wait, never connecting")
			if d.events == nil {
				// What can be seen from outside: after waitfor (and a
				// second's grace) the door admits nobody.
				d.checkEvents(nil, "door closed for waitfor")
				time.Sleep(scenWaitfor + time.Second)
				d.checkClosed(client)
				return nil
			}
			closed, err := d.Wait(dt.Closed(""), 1, scenWaitfor+3*time.Second)
			if !r.Check(err == nil && closed[0].Why == "waitfor", "door closed for waitfor (%v)", err) {
				return nil
			}
			// The daemon's own clock, from accepting the knock to closing.
			knock, _ := d.Last(dt.Accepted())
			took := closed[0].Time.Sub(knock.Time)
			r.Check(took > scenWaitfor-time.Second && took < scenWaitfor+time.Second,
				"door closed %.1fs after the knock (waitfor %v ±1s)", took.Seconds(), scenWaitfor)
			d.checkClosed(client)
			return nil
		},
	}
}
