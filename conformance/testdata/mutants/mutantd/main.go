//go:build linux

// Command mutantd is doormand with one defect planted, for checking that
// the conformance suite notices it. It reuses the real engine, capture and
// firewall and breaks one thing by wrapping a seam:
//
//	-mutant replay       the replay store admits every digest (CLASSIC-5.1)
//	-mutant mac          the hmac of every parsed knock is replaced by the
//	                     right one before the engine sees it (CLASSIC-4.1)
//	-mutant never-close  firewall deletes are ignored while running (CLASSIC-6.3, 6.6)
//
// Usage: mutantd -mutant NAME -f doormand.cf (always in debug mode).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/doorman-project/doorman/daemon"
	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/daemon/service"
	"github.com/doorman-project/doorman/protocol"
)

func main() {
	mutant := flag.String("mutant", "", "replay, mac or never-close")
	cfgPath := flag.String("f", "", "doormand.cf")
	flag.Parse()
	if err := run(*mutant, *cfgPath); err != nil {
		fmt.Fprintln(os.Stderr, "mutantd:", err)
		os.Exit(1)
	}
}

// admitAll is a replay store that never refuses.
type admitAll struct{}

func (admitAll) Admit([protocol.MACSize]byte, replay.Fingerprint) (time.Time, error) {
	return time.Time{}, nil
}

// keepRules never closes a door while running: closing changes are
// reported done and not made.
type keepRules struct{ daemon.Firewall }

func (k keepRules) Apply(ctx context.Context, doors []firewall.Door) []error {
	var keep []firewall.Door
	var idx []int
	errs := make([]error, len(doors))
	for i, d := range doors {
		if d.State != firewall.DoorClosed {
			keep = append(keep, d)
			idx = append(idx, i)
		}
	}
	for j, err := range k.Firewall.Apply(ctx, keep) {
		errs[idx[j]] = err
	}
	return errs
}

// resign rewrites the hmac of every parsed knock with the guest's secret.
type resign struct {
	daemon.PacketSource
	secrets map[string][]byte
}

func (r resign) Read(p *capture.Packet) error {
	if err := r.PacketSource.Read(p); err != nil {
		return err
	}
	var k protocol.Knock
	if protocol.ParseKnock(p.Payload, &k) == nil {
		if s, ok := r.secrets[k.GroupString()]; ok {
			// Canonical form with the right mac in place of the received one.
			p.Payload = k.AppendPayload(nil)
			mac := k.Sign(s)
			p.Payload = append(p.Payload[:len(p.Payload)-2*protocol.MACSize], fmt.Sprintf("%x", mac)...)
		}
	}
	return nil
}

func run(mutant, cfgPath string) error {
	svc, guests, err := service.Load(service.Options{ConfigPath: cfgPath, Debug: true})
	if err != nil {
		return err
	}
	defer svc.Close()
	cfg := svc.Config()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer stop()

	fw, err := svc.Firewall()
	if err != nil {
		return err
	}
	var src daemon.PacketSource
	c, err := capture.Open(ctx, capture.Config{Interface: cfg.Interface, Mode: cfg.Capture, LinkHeaderLen: cfg.LinkHeaderLength,
		KnockPort: cfg.Port, Logger: svc.Logger()})
	if err != nil {
		return err
	}
	src = c
	var store daemon.ReplayStore
	rs, err := replay.Open(cfg.HashArchive, replay.Options{Capacity: cfg.HashArchiveSize, Logger: svc.Logger()})
	if err != nil {
		return err
	}
	defer rs.Close()
	store = rs

	switch mutant {
	case "replay":
		store = admitAll{}
	case "never-close":
		fw = keepRules{fw}
	case "mac":
		list, _, err := config.LoadGuestList(cfg.GuestList, false, nil)
		if err != nil {
			return err
		}
		sec := map[string][]byte{}
		for _, g := range list {
			sec[g.Name] = g.Secret
		}
		src = resign{PacketSource: c, secrets: sec}
	default:
		return fmt.Errorf("unknown mutant %q", mutant)
	}
	eng := daemon.New(daemon.Options{Settings: daemon.Settings{Interface: cfg.Interface, WaitFor: cfg.WaitFor,
		Delay1: cfg.ConnDelay1, Delay2: cfg.ConnDelay2},
		Guests: guests, Source: src, Firewall: fw, Replay: store, Conns: service.SockDiag{}, Logger: svc.Logger(),
		Events: func(ev daemon.Event) {
			if ev.Kind == daemon.EventReady {
				svc.Logger().Info("doormand started", "mutant", mutant)
			}
		}})
	return eng.Run(ctx)
}
