//go:build linux

package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/daemon/replay"
	dt "github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
	"github.com/doorman-project/doorman/knocker"
	"github.com/doorman-project/doorman/protocol"
	"github.com/google/nftables"
)

// Load sizes the load scenarios. Its zero value is the load the figures of
// the performance issue are judged at (a 200000/s junk flood for 5 s,
// 50000 SYN/s, 100 knocks, 1000000 replay digests); LightLoad is a
// fraction of it that runs every path of every scenario in seconds, for
// go test.
type Load struct {
	// Flood sizes the flood and flood-modern scenarios.
	Flood FloodOptions
	// SYNRate is the synflood scenario's SYNs per second; 0 means 50000.
	SYNRate int
	// SYNDuration is how long each synflood phase floods; 0 means 2 s.
	SYNDuration time.Duration
	// Knocks is how many knocks the latency scenario times, at most
	// maxTimedKnocks; 0 means 100.
	Knocks int
	// Digests is how many replay digests bigstore's store holds; 0 means
	// 1000000.
	Digests int
}

// LightLoad returns a load for go test: every load scenario's paths, at a
// tenth of the rates or less.
func LightLoad() Load {
	return Load{
		Flood:       FloodOptions{Rate: 20000, Duration: time.Second, Knocks: 5},
		SYNRate:     10000,
		SYNDuration: 500 * time.Millisecond,
		Knocks:      20,
		Digests:     100000,
	}
}

// maxTimedKnocks bounds the knocks a scenario times: each comes from an
// address of its own (extraAddrs), so that no door waits for the one
// before it to close.
const maxTimedKnocks = 100

func (l Load) withDefaults() Load {
	l.Flood = l.Flood.withDefaults()
	if l.SYNRate <= 0 {
		l.SYNRate = 50000
	}
	if l.SYNDuration <= 0 {
		l.SYNDuration = 2 * time.Second
	}
	if l.Knocks <= 0 {
		l.Knocks = 100
	}
	l.Knocks = min(l.Knocks, maxTimedKnocks)
	if l.Digests <= 0 {
		l.Digests = 1_000_000
	}
	return l
}

// perfSetup describes a perfLAN.
type perfSetup struct {
	names   []string      // hosts beside the server
	waitfor time.Duration // 0: scenWaitfor
	modern  bool          // give doormand a key pair and the modern guest bob
}

// perfLab is a LAN with doormand running on its server.
type perfLab struct {
	*scenHosts
	d      *doorman
	keys   *modernKeys // with perfSetup.modern
	svc    netip.AddrPort
	server *netsim.LinkEnd
	// started is how long doormand took from its start to ready.
	started time.Duration
}

// modernKeys are the modern protocol's key pairs of a scenario: the
// doorman's and the client's, and the client's knock configuration.
type modernKeys struct {
	server, client protocol.PrivateKey
	knockcf        string // .knockcf naming the server and the client's key
}

// modernGuest is the modern guest's name; it may knock for scenSvcPort.
const modernGuest = "bob"

// perfLAN is lanWith with the knobs the performance and modern scenarios
// need: a waitfor of their own and the modern protocol's keys.
func perfLAN(ctx context.Context, r *Run, o perfSetup) (*perfLab, error) {
	t := &scenHosts{others: map[string]*netsim.Host{}}
	var err error
	if t.server, err = r.Net.AddHost("server"); err != nil {
		return nil, err
	}
	hosts := []*netsim.Host{t.server}
	for _, name := range o.names {
		h, err := r.Net.AddHost(name)
		if err != nil {
			return nil, err
		}
		t.others[name] = h
		hosts = append(hosts, h)
	}
	if t.lan, err = r.Net.LAN("lan", hosts...); err != nil {
		return nil, err
	}
	for _, h := range hosts {
		r.Step("host %s at %s", h.Name(), h.Addr4())
	}
	end := t.lan.End(t.server)
	if end == nil {
		return nil, errors.New("server has no LAN interface")
	}
	if err := installPolicyDrop(ctx, r, t.server); err != nil {
		return nil, err
	}
	lab := &perfLab{scenHosts: t, svc: netip.AddrPortFrom(t.server.Addr4(), scenSvcPort), server: end}
	if err := dt.Serve(ctx, t.server, lab.svc); err != nil {
		return nil, err
	}
	waitfor := o.waitfor
	if waitfor <= 0 {
		waitfor = scenWaitfor
	}
	allowed := t.lan.Prefix4()
	guests := fmt.Sprintf("%s %s %d %s\n", scenGuest, scenSecret, scenSvcPort, allowed)
	var extra []string
	if o.modern {
		if lab.keys, err = newModernKeys(r.Dir, t.server.Addr4()); err != nil {
			return nil, err
		}
		extra = append(extra, "private-key "+filepath.Join(r.Dir, "doormand.key"))
		guests += fmt.Sprintf("%s pubkey.%s %d %s\n", modernGuest, lab.keys.client.Public(), scenSvcPort, allowed)
	}
	r.Step("server %s: policy-drop ruleset, service on :%d, waitfor %v, guest %s%s allowed from %s", t.server.Addr4(), scenSvcPort,
		waitfor, scenGuest, map[bool]string{true: " and modern guest " + modernGuest}[o.modern], allowed)
	cf := dt.Config(end.Name, waitfor, append([]string{"firewall nftables", "nft-table doorman"}, extra...)...)
	start := time.Now()
	if lab.d, err = startDoorman(ctx, r, t.server, r.Dir, dt.Options{Config: cf, Guests: guests}); err != nil {
		return nil, err
	}
	lab.started = time.Since(start)
	return lab, nil
}

// newModernKeys makes the key pairs and writes doormand.key, knock.key and
// knockcf into dir.
func newModernKeys(dir string, server netip.Addr) (*modernKeys, error) {
	k := &modernKeys{knockcf: filepath.Join(dir, "knockcf")}
	var err error
	if k.server, err = protocol.NewPrivateKey(rand.Reader); err != nil {
		return nil, err
	}
	if k.client, err = protocol.NewPrivateKey(rand.Reader); err != nil {
		return nil, err
	}
	if err := config.WritePrivateKey(filepath.Join(dir, "doormand.key"), &k.server); err != nil {
		return nil, err
	}
	if err := config.WritePrivateKey(filepath.Join(dir, "knock.key"), &k.client); err != nil {
		return nil, err
	}
	cf := fmt.Sprintf("server %s %s\nprivate-key %s\n", server, k.server.Public(), filepath.Join(dir, "knock.key"))
	if err := os.WriteFile(k.knockcf, []byte(cf), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// seal makes the client's modern knock to the doorman whose public key is
// server for r, stamped now unless r.Time is set.
func (k *modernKeys) seal(server protocol.PublicKey, r protocol.Request) ([]byte, error) {
	if r.Time == 0 {
		r.Time = uint64(time.Now().UnixNano())
	}
	return protocol.SealKnock(nil, &k.client, server, &r, rand.Reader)
}

// classicPayload makes a fresh classic knock of the guest for scenSvcPort.
func classicPayload() ([]byte, error) {
	_, p, err := knocker.Build(knocker.Options{Group: scenGuest, Secret: protocol.Secret(scenSecret), Service: strconv.Itoa(scenSvcPort)})
	return p, err
}

// sendUDPFrom sends payload from src (one of h's addresses; the zero
// Addr: the one the route to dst picks) to dst.
func sendUDPFrom(h *netsim.Host, src netip.Addr, dst netip.AddrPort, payload []byte) (time.Time, error) {
	var sent time.Time
	var laddr *net.UDPAddr
	if src.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	err := h.Do(func() error {
		c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		sent = time.Now()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("send from %s (%s): %w", h.Name(), src, err)
	}
	return sent, nil
}

// timedKnock is one knock whose way through doormand was timed.
type timedKnock struct {
	src       netip.Addr
	sent      time.Time
	connected time.Duration // sent → TCP handshake through the door done
	err       error         // the knock got no connection through
}

// knockAndConnect sends payload from src in h to the knock port, then
// probes the service until a connection gets through, checks that it is
// the service's (its greeting) and closes it.
//
// The probe sockets are made before the knock is sent, as a client that
// knocks and connects has its socket ready: making them in the namespace
// afterwards costs more than doormand takes to arm the door.
func (lab *perfLab) knockAndConnect(ctx context.Context, h *netsim.Host, src netip.Addr, payload []byte) timedKnock {
	k := timedKnock{src: src}
	p, err := newProber(h, src, 32)
	if err != nil {
		k.err = err
		return k
	}
	defer p.Close()
	if k.sent, err = sendUDPFrom(h, src, netip.AddrPortFrom(lab.server.Addr4, scenKnockPort), payload); err != nil {
		k.err = err
		return k
	}
	pctx, cancel := context.WithTimeout(ctx, scenWaitfor)
	defer cancel()
	c, at, err := p.connect(pctx, lab.svc, fineProbe)
	if err != nil {
		k.err = err
		return k
	}
	defer c.Close()
	k.connected = at.Sub(k.sent)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, len(dt.Greeting))
	if _, err := c.Read(buf); err != nil || string(buf) != dt.Greeting {
		k.err = fmt.Errorf("connection from %s got no greeting (%q, %v)", src, buf, err)
	}
	return k
}

// knockStats are the percentiles of a run of timed knocks, from the client
// (to connected) and from doormand's events (to the knock's event, and to
// the door armed: its rule in force).
type knockStats struct {
	ok                   int
	failures             []string
	connected, seen, arm []time.Duration // sorted
	commit               []time.Duration // knock event → door armed, sorted
}

// stats matches the knocks with doormand's events by source address: each
// knock came from an address of its own.
func (lab *perfLab) stats(ks []timedKnock) knockStats {
	var st knockStats
	seen, armed := map[netip.Addr]time.Time{}, map[netip.Addr]time.Time{}
	for _, e := range lab.d.Events() {
		switch {
		case dt.Accepted()(e):
			if _, ok := seen[e.Src]; !ok {
				seen[e.Src] = e.Time
			}
		case dt.DoorState(dt.StateArmed)(e):
			if _, ok := armed[e.Src]; !ok {
				armed[e.Src] = e.Time
			}
		}
	}
	for _, k := range ks {
		if k.err != nil {
			st.failures = append(st.failures, k.err.Error())
			continue
		}
		st.ok++
		st.connected = append(st.connected, k.connected)
		if t, ok := seen[k.src]; ok {
			st.seen = append(st.seen, t.Sub(k.sent))
		}
		if t, ok := armed[k.src]; ok {
			st.arm = append(st.arm, t.Sub(k.sent))
			if s, ok := seen[k.src]; ok {
				st.commit = append(st.commit, t.Sub(s))
			}
		}
	}
	for _, s := range [][]time.Duration{st.connected, st.seen, st.arm, st.commit} {
		slices.Sort(s)
	}
	return st
}

// ms converts a duration to milliseconds for figures.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// figures prints the percentiles as FIGUREs named prefix_….
func (st knockStats) figures(r *Run, prefix string) {
	if len(st.connected) > 0 {
		r.Figure(prefix+"_connected_p50", ms(latencyPercentile(st.connected, 50)), "ms")
		r.Figure(prefix+"_connected_p99", ms(latencyPercentile(st.connected, 99)), "ms")
		r.Figure(prefix+"_connected_max", ms(st.connected[len(st.connected)-1]), "ms")
	}
	if len(st.seen) > 0 {
		r.Figure(prefix+"_seen_p50", ms(latencyPercentile(st.seen, 50)), "ms")
		r.Figure(prefix+"_seen_p99", ms(latencyPercentile(st.seen, 99)), "ms")
	}
	if len(st.arm) > 0 {
		r.Figure(prefix+"_armed_p50", ms(latencyPercentile(st.arm, 50)), "ms")
		r.Figure(prefix+"_armed_p99", ms(latencyPercentile(st.arm, 99)), "ms")
	}
	if len(st.commit) > 0 {
		r.Figure(prefix+"_commit_p50", ms(latencyPercentile(st.commit, 50)), "ms")
		r.Figure(prefix+"_commit_p99", ms(latencyPercentile(st.commit, 99)), "ms")
	}
}

// timeKnocks knocks n times, once from each of addrs, and times each to
// connected; payload makes each knock for its source address.
func (lab *perfLab) timeKnocks(ctx context.Context, h *netsim.Host, addrs []netip.Addr, payload func(src netip.Addr) ([]byte, error)) ([]timedKnock, error) {
	ks := make([]timedKnock, 0, len(addrs))
	for _, a := range addrs {
		p, err := payload(a)
		if err != nil {
			return nil, err
		}
		ks = append(ks, lab.knockAndConnect(ctx, h, a, p))
	}
	return ks, nil
}

func classicFor(netip.Addr) ([]byte, error) { return classicPayload() }

// synScenPort is the closed port the SYN flood aims at: no service, no
// guest, no door.
const synScenPort = 3389

func synfloodScenario(l Load) Scenario {
	l = l.withDefaults()
	return Scenario{
		Name: "synflood",
		Description: fmt.Sprintf("%d SYN/s to an unrelated closed port, with no door and with one door waiting: doormand's CPU share "+
			"(SYNs that claim no door never reach it)", l.SYNRate),
		Tags:  []string{TagLoad},
		Needs: []Need{NeedDoormand, NeedNftables, NeedPacket},
		Run:   func(ctx context.Context, r *Run) error { return runSynflood(ctx, r, l.SYNRate, l.SYNDuration) },
	}
}

func runSynflood(ctx context.Context, r *Run, rate int, dur time.Duration) error {
	// The waiting door must outlast the second phase.
	lab, err := perfLAN(ctx, r, perfSetup{names: []string{"client", "attacker"}, waitfor: 2*dur + 10*time.Second})
	if err != nil {
		return err
	}
	client, attacker := lab.others["client"], lab.others["attacker"]
	aEnd := lab.lan.End(attacker)
	target := netip.AddrPortFrom(lab.server.Addr4, synScenPort)
	frames, err := synFrames(aEnd.MAC, lab.server.MAC, aEnd.Addr4, target, 4096)
	if err != nil {
		return err
	}
	snd, err := newFrameSender(aEnd, lab.server.MAC)
	if err != nil {
		return err
	}
	defer snd.Close()
	pid := lab.d.Pid()

	// Idle first: what doormand costs with nothing to do, the floor of
	// the figures below.
	m, err := startCPU(pid)
	if err != nil {
		return err
	}
	time.Sleep(dur)
	cpu, wall, err := m.stop()
	if err != nil {
		return err
	}
	r.Step("doormand idle for %v: %v of CPU", wall.Round(time.Millisecond), cpu)
	r.Figure("syn_cpu_idle", sharePct(cpu, wall), "%core")

	phase := func(name string) error {
		rx0, err := rxPackets(lab.server.Host, lab.server.Name)
		if err != nil {
			return err
		}
		m, err := startCPU(pid)
		if err != nil {
			return err
		}
		r.Step("attacker %s sends %d SYN/s to %s for %v (AF_PACKET, sendmmsg batches of %d)", aEnd.Addr4, rate, target, dur, floodBatch)
		sent, took, err := sendPaced(ctx, snd, frames, rate, dur)
		if err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond) // what is queued reaches the server
		cpu, wall, err := m.stop()
		if err != nil {
			return err
		}
		rx1, err := rxPackets(lab.server.Host, lab.server.Name)
		if err != nil {
			return err
		}
		sendRate := float64(sent) / took.Seconds()
		r.Step("sent %d SYNs in %v = %.0f/s (asked %d/s%s); the server's %s received %d packets; doormand used %v of CPU in %v",
			sent, took.Round(time.Millisecond), sendRate, rate, rateShortfall(sendRate, rate), lab.server.Name, rx1-rx0,
			cpu, wall.Round(time.Millisecond))
		r.Figure("syn_rate_"+name, sendRate, "SYN/s")
		r.Figure("syn_rx_rate_"+name, float64(rx1-rx0)/took.Seconds(), "pkt/s")
		r.Figure("syn_cpu_"+name, sharePct(cpu, wall), "%core")
		r.Check(sent > 0 && rx1-rx0 >= uint64(sent)*9/10, "the server received the SYNs (%d of %d)", rx1-rx0, sent)
		return nil
	}
	if err := phase("no_door"); err != nil {
		return err
	}

	p, err := classicPayload()
	if err != nil {
		return err
	}
	if _, err := sendUDPFrom(client, client.Addr4(), netip.AddrPortFrom(lab.server.Addr4, scenKnockPort), p); err != nil {
		return err
	}
	if !lab.d.waitN(dt.DoorState(dt.StateArmed).From(client.Addr4()), 1, 3*time.Second, "a door waits for client %s", client.Addr4()) {
		return nil
	}
	if err := phase("door_waiting"); err != nil {
		return err
	}
	ev, err := lab.d.Counters(3 * time.Second)
	if err != nil {
		return err
	}
	r.Check(ev.Counters["syn"] == 0 && ev.OpenDoors == 1,
		"no SYN of the flood reached doormand (syn counter %d) and the door still waits (%d open)", ev.Counters["syn"], ev.OpenDoors)
	conn := lab.d.dial(client)
	r.Check(conn != nil, "the client still gets in through its door after the flood")
	if conn != nil {
		conn.Close()
	}
	return lab.d.stop()
}

func latencyScenario(l Load) Scenario {
	l = l.withDefaults()
	return Scenario{
		Name: "latency",
		Description: fmt.Sprintf("%d knocks one after another: knock to connected and to door armed, against a bare one-element nftables commit",
			l.Knocks),
		Tags:  []string{TagLoad},
		Needs: []Need{NeedDoormand, NeedNftables},
		Run:   func(ctx context.Context, r *Run) error { return runLatency(ctx, r, l.Knocks) },
	}
}

func runLatency(ctx context.Context, r *Run, knocks int) error {
	lab, err := perfLAN(ctx, r, perfSetup{names: []string{"client"}})
	if err != nil {
		return err
	}
	client := lab.others["client"]
	addrs, err := extraAddrs(lab.lan.End(client), lab.server, knocks+1)
	if err != nil {
		return err
	}
	r.Step("client has %d more addresses (%s … %s), one a knock, so that no door waits for the one before to close",
		len(addrs), addrs[len(addrs)-1], addrs[0])
	// The first knock warms up what happens once (the client's ARP for the
	// server, the daemon's first door); it is not timed.
	warm, err := lab.timeKnocks(ctx, client, addrs[:1], classicFor)
	if err != nil {
		return err
	}
	if !r.Check(warm[0].err == nil, "a first knock from %s gets in (%v)", addrs[0], warm[0].err) {
		return nil
	}
	r.Step("%d knocks, each followed by connection attempts every %v until one gets through", knocks, probeEvery)
	ks, err := lab.timeKnocks(ctx, client, addrs[1:], classicFor)
	if err != nil {
		return err
	}
	st := lab.stats(ks)
	r.Check(st.ok == knocks, "every knock got in (%d of %d)%s", st.ok, knocks, firstFewErrs(st.failures))
	st.figures(r, "latency")

	bare, err := bareCommits(lab.server.Host, knocks)
	if err != nil {
		r.Check(false, "bare nftables commits in the server: %v", err)
		return lab.d.stop()
	}
	slices.Sort(bare)
	r.Step("bare commit: one element added to a set with a timeout, one netlink batch, %d times, in table %s of the server", len(bare), bareTable)
	r.Figure("latency_bare_commit_p50", ms(latencyPercentile(bare, 50)), "ms")
	r.Figure("latency_bare_commit_p99", ms(latencyPercentile(bare, 99)), "ms")
	if b := latencyPercentile(bare, 50); b > 0 && len(st.commit) > 0 {
		r.Figure("latency_commit_over_bare", float64(latencyPercentile(st.commit, 50))/float64(b), "x")
	}
	return lab.d.stop()
}

// bareTable is the nftables table of bareCommits.
const bareTable = "dmpf-bare"

// bareCommits times n commits of one element into a set like a door's
// (addresses and port, with a timeout) through one lasting netlink
// connection in h, as doormand's backend makes them: the floor a door's
// rule can come into force at.
func bareCommits(h *netsim.Host, n int) ([]time.Duration, error) {
	var lats []time.Duration
	err := h.Do(func() error {
		c, err := nftables.New(nftables.AsLasting())
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		t := c.AddTable(&nftables.Table{Name: bareTable, Family: nftables.TableFamilyINet})
		s := &nftables.Set{Table: t, Name: "doors", HasTimeout: true,
			KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr, nftables.TypeInetService)}
		if err := c.AddSet(s, nil); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("table %s: %w", bareTable, err)
		}
		defer func() {
			c.DelTable(t)
			c.Flush()
		}()
		for i := range n {
			key := make([]byte, 12)
			binary.BigEndian.PutUint32(key, 0xc6120000|uint32(i)) // 198.18.x.x
			binary.BigEndian.PutUint32(key[4:], 0xc6120101)
			binary.BigEndian.PutUint16(key[8:], scenSvcPort)
			e := []nftables.SetElement{{Key: key, Timeout: scenWaitfor}}
			start := time.Now()
			if err := c.SetAddElements(s, e); err != nil {
				return err
			}
			if err := c.Flush(); err != nil {
				return fmt.Errorf("commit %d: %w", i, err)
			}
			lats = append(lats, time.Since(start))
			if err := c.SetDeleteElements(s, e); err != nil {
				return err
			}
			if err := c.Flush(); err != nil {
				return err
			}
		}
		return nil
	})
	return lats, err
}

func bigstoreScenario(l Load) Scenario {
	l = l.withDefaults()
	return Scenario{
		Name: "bigstore",
		Description: fmt.Sprintf("doormand on a replay store of %d digests: start time, RSS and knock latency, against a fresh one's",
			l.Digests),
		Tags:  []string{TagLoad},
		Needs: []Need{NeedDoormand, NeedNftables},
		Run:   func(ctx context.Context, r *Run) error { return runBigstore(ctx, r, l.Digests) },
	}
}

// bigstoreKnocks is how many knocks bigstore times on each daemon.
const bigstoreKnocks = 20

// idleSettle is how long a fresh doormand idles before its RSS is read.
const idleSettle = time.Second

func runBigstore(ctx context.Context, r *Run, digests int) error {
	lab, err := perfLAN(ctx, r, perfSetup{names: []string{"client"}})
	if err != nil {
		return err
	}
	r.Step("fresh doormand (empty replay store) ready %v after its start", lab.started.Round(time.Millisecond))
	r.Figure("fresh_start", lab.started.Seconds(), "s")
	client := lab.others["client"]
	addrs, err := extraAddrs(lab.lan.End(client), lab.server, 2*bigstoreKnocks)
	if err != nil {
		return err
	}
	time.Sleep(idleSettle)
	rss, err := procRSS(lab.d.Pid())
	if err != nil {
		return err
	}
	r.Step("fresh doormand, idle %v: VmRSS %.1f MiB", idleSettle, mb(rss))
	r.Figure("idle_rss", mb(rss), "MiB")
	ks, err := lab.timeKnocks(ctx, client, addrs[:bigstoreKnocks], classicFor)
	if err != nil {
		return err
	}
	fresh := lab.stats(ks)
	r.Check(fresh.ok == bigstoreKnocks, "every knock to the fresh doormand got in (%d of %d)%s", fresh.ok, bigstoreKnocks, firstFewErrs(fresh.failures))
	fresh.figures(r, "fresh")
	if err := lab.d.stop(); err != nil {
		return err
	}

	dir := filepath.Join(r.Dir, "bigstore")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	t0 := time.Now()
	if err := fillStore(filepath.Join(dir, "replay"), digests); err != nil {
		return err
	}
	st, err := os.Stat(filepath.Join(dir, "replay"))
	if err != nil {
		return err
	}
	r.Step("replay store of %d digests (%.1f MiB) built in %v through replay.Store.Import of a generated 0.81 archive",
		digests, mb(uint64(st.Size())), time.Since(t0).Round(time.Millisecond))
	capacity := digests + 10*bigstoreKnocks
	cf := dt.Config(lab.server.Name, scenWaitfor, "firewall nftables", "nft-table doorman", fmt.Sprintf("hash-archive-size %d", capacity))
	guests := fmt.Sprintf("%s %s %d %s\n", scenGuest, scenSecret, scenSvcPort, lab.lan.Prefix4())
	t0 = time.Now()
	big, err := startDoorman(ctx, r, lab.server.Host, dir, dt.Options{Config: cf, Guests: guests})
	if err != nil {
		return err
	}
	took := time.Since(t0)
	r.Step("doormand on the big store (hash-archive-size %d) ready %v after its start", capacity, took.Round(time.Millisecond))
	r.Figure("bigstore_start", took.Seconds(), "s")
	if rss, err = procRSS(big.Pid()); err != nil {
		return err
	}
	r.Figure("bigstore_rss", mb(rss), "MiB")
	lab.d = big
	ks, err = lab.timeKnocks(ctx, client, addrs[bigstoreKnocks:], classicFor)
	if err != nil {
		return err
	}
	bst := lab.stats(ks)
	r.Check(bst.ok == bigstoreKnocks, "every knock to the doormand on the big store got in (%d of %d)%s", bst.ok, bigstoreKnocks, firstFewErrs(bst.failures))
	bst.figures(r, "bigstore")
	if rss, err = procRSS(big.Pid()); err != nil {
		return err
	}
	r.Figure("bigstore_rss_after_knocks", mb(rss), "MiB")
	if err := big.stop(); err != nil {
		return err
	}
	// The store kept the knocks' digests beside the million.
	s, err := replay.Open(filepath.Join(dir, "replay"), replay.Options{Capacity: capacity})
	if err != nil {
		return err
	}
	n := s.Len()
	s.Close()
	r.Check(n == digests+bigstoreKnocks, "the store holds the %d digests and the %d knocks' (%d)", digests, bigstoreKnocks, n)
	return nil
}

// fillStore creates a replay store at path holding n random digests, by
// importing a Doorman 0.81 hash archive of them (24-byte records: digest
// and a little-endian time_t) as `doormand --import-archive` does.
func fillStore(path string, n int) error {
	archive := path + ".0.81-generated"
	data := make([]byte, 24*n)
	if _, err := rand.Read(data); err != nil {
		return err
	}
	at := uint64(time.Now().Add(-time.Hour).Unix())
	for i := range n {
		binary.LittleEndian.PutUint64(data[24*i+16:], at)
	}
	if err := os.WriteFile(archive, data, 0o600); err != nil {
		return err
	}
	defer os.Remove(archive)
	s, err := replay.Open(path, replay.Options{Capacity: n})
	if err != nil {
		return err
	}
	got, err := s.Import(archive)
	if err := errors.Join(err, s.Close()); err != nil {
		return fmt.Errorf("import into %s: %w", path, err)
	}
	if got != n {
		return fmt.Errorf("import into %s: %d of %d digests", path, got, n)
	}
	return nil
}
