//go:build linux

package sim

import (
	"context"
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
		Description: "a captured knock is accepted once, then refused from anywhere, also after a restart",
		Run: func(ctx context.Context, r *Run) error {
			t, d, err := lanWith(ctx, r, "client", "client2")
			if err != nil {
				return err
			}
			client, client2 := t.others["client"], t.others["client2"]
			r.Step("capture a payload with knock --dry-run")
			p, err := d.payload(ctx)
			if err != nil {
				return err
			}
			if err := d.send(client, p); err != nil {
				return err
			}
			r.Check(d.waitLog(`msg="knock accepted"`, 1, 3*time.Second), "first sending accepted")
			r.Check(d.waitLog(`msg="door closed"`, 1, scenWaitfor+3*time.Second), "door closed again after waitfor")
			const replay = "PROBABLE REPLAY ATTEMPT"
			if err := d.send(client, p); err != nil {
				return err
			}
			r.Check(d.waitLog(replay, 1, 3*time.Second), "same bytes from client refused: %s logged", replay)
			if err := d.send(client2, p); err != nil {
				return err
			}
			r.Check(d.waitLog(replay, 2, 3*time.Second), "same bytes from client2 refused: %s logged", replay)
			d.checkClosed(client2)
			if err := d.stop(); err != nil {
				r.Check(false, "doormand exited cleanly on SIGTERM: %v", err)
			}
			if err := d.start(ctx); err != nil {
				return err
			}
			if err := d.send(client, p); err != nil {
				return err
			}
			r.Check(d.waitLog(replay, 3, 3*time.Second), "same bytes after restart refused: %s logged", replay)
			r.Check(d.count(`msg="knock accepted"`) == 1, "only the first sending was ever accepted")
			d.checkClosed(client)
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
