//go:build linux

// Command mutantd is doormand with one defect planted, for checking that
// the conformance suite notices it. It reuses the real engine, capture and
// firewall and breaks one thing by wrapping or replacing a seam:
//
//	-mutant replay           the replay store admits every digest (CLASSIC-5.1)
//	-mutant mac              the hmac of every parsed knock is replaced by the
//	                         right one before the engine sees it (CLASSIC-4.1)
//	-mutant never-close      the firewall reports every door closed but closes none
//	                         while running (CLASSIC-6.3, 6.6)
//	-mutant late-end         the connection state is read once, at
//	                         connection-delay-1, and an established connection
//	                         never ends after that (CLASSIC-6.6/2): a connection
//	                         shorter than connection-delay-1 still closes its door
//	-mutant knock-port-open  the nftables table has no drop rule for the knock
//	                         port (CLASSIC-4.2/2)
//	-mutant knock-port-reply every datagram to the knock port gets a UDP reply
//	                         (CLASSIC-4.2)
//	-mutant no-dst-check     the capture's own-address check is off
//	                         (capture.Config.AcceptForeign) (CLASSIC-4.4)
//	-mutant no-checksum      a capture of its own that does not check checksums
//	                         (CLASSIC-4.3/2)
//	-mutant full-admits      a full replay store admits new digests (CLASSIC-5.4/1)
//	-mutant lenient          leading zeros of the port and bytes after the
//	                         fourth field are dropped before parsing (CLASSIC-2.1/2)
//
// and in the modern protocol (spec section 12), mostly through the engine's
// VerifyModern seam (daemon.Options.VerifyModern):
//
//	-mutant modern-window        the time window is as wide as it can be (MODERN-12.14)
//	-mutant modern-stale         the stamp store admits every time (MODERN-12.17/1)
//	-mutant modern-volatile      the stamps live in memory: right until a restart (MODERN-12.17/2)
//	-mutant modern-stamp-refused a knock refused after its guest is known records
//	                             its time anyway (MODERN-12.17/3)
//	-mutant modern-source        the stated source address is ignored: every
//	                             knock counts as "as seen" (MODERN-12.15)
//	-mutant modern-pin           the stated source port is ignored (MODERN-12.18)
//	-mutant modern-rate          no rate limit per source (MODERN-12.12)
//	-mutant modern-mac1          mac1 is put right before the engine checks it,
//	                             as if it were not checked (MODERN-12.6/2)
//
// Usage: mutantd -mutant NAME -f doormand.cf (always in debug mode). It
// logs "doormand started" on the engine's ready event.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/doorman-project/doorman/daemon"
	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/daemon/service"
	"github.com/doorman-project/doorman/protocol"
	"golang.org/x/crypto/blake2s"
)

func main() {
	mutant := flag.String("mutant", "", "the defect to plant (see the package documentation)")
	cfgPath := flag.String("f", "", "doormand.cf")
	events := flag.String("events", "", "append the event stream to this file, as doormand --events does")
	flag.Parse()
	if err := run(*mutant, *cfgPath, *events); err != nil {
		fmt.Fprintln(os.Stderr, "mutantd:", err)
		os.Exit(1)
	}
}

// admitAll is a replay store that never refuses.
type admitAll struct{}

func (admitAll) Admit([protocol.MACSize]byte, replay.Fingerprint) (time.Time, error) {
	return time.Time{}, nil
}

// fullAdmits admits a new digest when the store is full.
type fullAdmits struct{ daemon.ReplayStore }

func (f fullAdmits) Admit(mac [protocol.MACSize]byte, fp replay.Fingerprint) (time.Time, error) {
	t, err := f.ReplayStore.Admit(mac, fp)
	if errors.Is(err, protocol.ErrReplayFull) {
		return time.Time{}, nil
	}
	return t, err
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

// lateEnd reads a connection's state once, when it is connection-delay-1
// old, and never sees an established connection end.
type lateEnd struct {
	daemon.ConnTracker
	delay1 time.Duration

	mu    sync.Mutex
	first map[[2]netip.AddrPort]time.Time
	stuck map[[2]netip.AddrPort]bool
}

func (l *lateEnd) State(local, remote netip.AddrPort) daemon.ConnState {
	key := [2]netip.AddrPort{local, remote}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stuck[key] {
		return daemon.ConnEstablished
	}
	t, ok := l.first[key]
	if !ok {
		l.first[key] = time.Now()
		return daemon.ConnHandshake
	}
	// The engine's last look comes when its connection-delay-1 timer,
	// started just before the first, fires: count that one as the look.
	if time.Since(t) < l.delay1*9/10 {
		return daemon.ConnHandshake
	}
	st := l.ConnTracker.State(local, remote)
	if st == daemon.ConnEstablished {
		l.stuck[key] = true
	}
	return st
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

// lenient reads knocks the way 0.81's atoi and token splitting did: a
// port's leading zeros and anything after the fourth field are ignored.
type lenient struct{ daemon.PacketSource }

func (l lenient) Read(p *capture.Packet) error {
	if err := l.PacketSource.Read(p); err != nil {
		return err
	}
	b := bytes.TrimLeft(p.Payload, "0")
	if f := bytes.Fields(b); len(f) > 4 {
		b = bytes.Join(f[:4], []byte(" "))
	}
	p.Payload = b
	return nil
}

// admitStamps is a stamp store that admits every time.
type admitStamps struct{}

func (admitStamps) Advance([32]byte, uint64) (uint64, error) { return 0, nil }

// memStamps keeps the stamps in memory only: right while it runs,
// forgotten by a restart.
type memStamps struct {
	mu   sync.Mutex
	last map[[32]byte]uint64
}

func (m *memStamps) Advance(guest [32]byte, ts uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if last, ok := m.last[guest]; ok && ts <= last {
		return last, replay.ErrStale
	}
	m.last[guest] = ts
	return 0, nil
}

// remac1 puts the mac1 of every modern knock right for the doorman's key.
type remac1 struct {
	daemon.PacketSource
	key [32]byte // BLAKE2s-256("doorman mac1" || public key)
}

func (r remac1) Read(p *capture.Packet) error {
	if err := r.PacketSource.Read(p); err != nil {
		return err
	}
	if len(p.Payload) == protocol.ModernKnockLen && p.Payload[0] == protocol.ModernMagic && p.Payload[1] == protocol.ModernTypeKnock {
		m, _ := blake2s.New128(r.key[:])
		m.Write(p.Payload[:protocol.ModernKnockLen-protocol.ModernMAC1Len])
		p.Payload = m.Sum(p.Payload[:protocol.ModernKnockLen-protocol.ModernMAC1Len])
	}
	return nil
}

// reply answers every datagram the capture delivers.
type reply struct {
	daemon.PacketSource
	conn *net.UDPConn
}

func (r reply) Read(p *capture.Packet) error {
	err := r.PacketSource.Read(p)
	if err == nil {
		_, _ = r.conn.WriteToUDPAddrPort([]byte("knock received"), netip.AddrPortFrom(p.Src, p.SrcPort))
	}
	return err
}

func run(mutant, cfgPath, eventsPath string) error {
	var events *os.File
	if eventsPath != "" {
		f, err := os.OpenFile(eventsPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		events = f
	}
	svc, guests, err := service.Load(service.Options{ConfigPath: cfgPath, Debug: true})
	if err != nil {
		return err
	}
	defer svc.Close()
	cfg := svc.Config()
	log := svc.Logger()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer stop()

	fw, err := svc.Firewall()
	if err != nil {
		return err
	}
	ccfg := capture.Config{Interface: cfg.Interface, Mode: cfg.Capture, LinkHeaderLen: cfg.LinkHeaderLength,
		KnockPort: cfg.Port, Logger: log, AcceptForeign: mutant == "no-dst-check"}
	rs, err := replay.Open(cfg.HashArchive, replay.Options{Capacity: cfg.HashArchiveSize, Logger: log})
	if err != nil {
		return err
	}
	defer rs.Close()
	sd, err := service.NewSockDiag()
	if err != nil {
		return err
	}
	defer sd.Close()
	var (
		store daemon.ReplayStore = rs
		conns daemon.ConnTracker = sd
		src   daemon.PacketSource
	)
	if mutant == "no-checksum" {
		src, err = openRawSource(cfg.Interface, cfg.Port, true, false)
	} else {
		src, err = capture.Open(ctx, ccfg)
	}
	if err != nil {
		return err
	}

	switch mutant {
	case "replay":
		store = admitAll{}
	case "full-admits":
		store = fullAdmits{rs}
	case "never-close":
		fw = keepRules{fw}
	case "late-end":
		conns = &lateEnd{ConnTracker: conns, delay1: cfg.ConnDelay1,
			first: map[[2]netip.AddrPort]time.Time{}, stuck: map[[2]netip.AddrPort]bool{}}
	case "knock-port-open":
		if cfg.Firewall != config.FirewallNftables {
			return errors.New("knock-port-open needs firewall nftables")
		}
		// The backend as doormand builds it, without the knock port.
		fw = firewall.NewNFTables(firewall.NFTConfig{Table: cfg.NftTable, Mark: cfg.DoorMark, Protect: cfg.Protect,
			LogGroup: cfg.LogGroup, MaxDoors: cfg.MaxDoors, Logger: log})
	case "knock-port-reply":
		c, err := net.ListenUDP("udp", &net.UDPAddr{})
		if err != nil {
			return err
		}
		defer c.Close()
		src = reply{PacketSource: src, conn: c}
	case "mac":
		list, _, err := config.LoadGuestList(cfg.GuestList, false, nil)
		if err != nil {
			return err
		}
		sec := map[string][]byte{}
		for _, g := range list {
			sec[g.Name] = g.Secret
		}
		src = resign{PacketSource: src, secrets: sec}
	case "lenient":
		src = lenient{src}
	case "no-dst-check", "no-checksum":
	case "modern-window", "modern-stale", "modern-volatile", "modern-stamp-refused", "modern-source", "modern-pin",
		"modern-rate", "modern-mac1":
	default:
		return fmt.Errorf("unknown mutant %q", mutant)
	}
	// The modern protocol, as doormand wires it.
	settings := daemon.Settings{Interface: cfg.Interface, WaitFor: cfg.WaitFor, Delay1: cfg.ConnDelay1, Delay2: cfg.ConnDelay2,
		ClassicOff: !cfg.Classic, ModernWindow: cfg.ModernWindow, ModernRate: cfg.ModernRate, ModernBurst: cfg.ModernBurst}
	var opener *protocol.Opener
	key, err := config.LoadPrivateKey(cfg.PrivateKey, false)
	switch {
	case err == nil:
		opener = protocol.NewOpener(&key)
		clear(key[:])
	case guests.Modern() > 0:
		return fmt.Errorf("modern guests and no private key: %w", err)
	}
	stamps, err := replay.OpenStamps(cfg.StampFile(), replay.Options{Logger: log})
	if err != nil {
		return err
	}
	defer stamps.Close()
	var (
		stampStore daemon.StampStore = stamps
		verify     func(*protocol.ModernKnock, *protocol.Guest, netip.Addr, time.Time, time.Duration) (time.Duration, error)
	)
	switch mutant {
	case "modern-window":
		verify = func(k *protocol.ModernKnock, g *protocol.Guest, src netip.Addr, now time.Time, _ time.Duration) (time.Duration, error) {
			return protocol.VerifyModern(k, g, src, now, time.Duration(math.MaxInt64))
		}
	case "modern-stale":
		stampStore = admitStamps{}
	case "modern-volatile":
		stampStore = &memStamps{last: map[[32]byte]uint64{}}
	case "modern-stamp-refused":
		verify = func(k *protocol.ModernKnock, g *protocol.Guest, src netip.Addr, now time.Time, w time.Duration) (time.Duration, error) {
			skew, err := protocol.VerifyModern(k, g, src, now, w)
			if err != nil {
				_, _ = stamps.Advance([32]byte(k.Client), k.Time)
			}
			return skew, err
		}
	case "modern-source":
		verify = func(k *protocol.ModernKnock, g *protocol.Guest, src netip.Addr, now time.Time, w time.Duration) (time.Duration, error) {
			k.Source = netip.Addr{}
			return protocol.VerifyModern(k, g, src, now, w)
		}
	case "modern-pin":
		verify = func(k *protocol.ModernKnock, g *protocol.Guest, src netip.Addr, now time.Time, w time.Duration) (time.Duration, error) {
			k.SourcePort = 0
			return protocol.VerifyModern(k, g, src, now, w)
		}
	case "modern-rate":
		settings.ModernRate, settings.ModernBurst = config.MaxModernRate, config.MaxModernBurst
	case "modern-mac1":
		if opener == nil {
			return errors.New("modern-mac1 needs the private key")
		}
		pub := opener.PublicKey()
		src = remac1{PacketSource: src, key: blake2s.Sum256(append([]byte(protocol.ModernMAC1Label), pub[:]...))}
	}
	eng := daemon.New(daemon.Options{Settings: settings,
		Opener: opener, Stamps: stampStore, VerifyModern: verify,
		Guests: guests, Source: src, Firewall: fw, Replay: store, Conns: conns, Logger: log,
		Events: func(ev daemon.Event) {
			if ev.Kind == daemon.EventReady {
				log.Info("doormand started", "mutant", mutant)
			}
			if events != nil {
				if b, err := json.Marshal(ev); err == nil {
					events.Write(append(b, '\n'))
				}
			}
		}})
	return eng.Run(ctx)
}
