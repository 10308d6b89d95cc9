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
	"strings"
	"sync"
	"time"

	dt "github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
	"github.com/doorman-project/doorman/knocker"
	"github.com/doorman-project/doorman/protocol"
)

// crowdClients is how many clients knock at once in the crowd scenario.
const crowdClients = 100

// crowdProbe is how each client of the crowd tries to connect after its
// knock: an attempt every millisecond for 20 ms, then every 5 ms.
// knocker.DialOpen's own loop, every 25 ms with a blocked thread per
// attempt in a namespace, made the crowd's figures those of the generator:
// doors armed within 50 ms, clients in after 1.6 s.
var crowdProbe = probeSchedule{every: time.Millisecond, fast: 20, slowEvery: 5 * time.Millisecond, max: 400}

// setupParallel bounds the hosts created or attached at once: the kernel
// raises carrier from a work queue that runs at most once a second, so
// attaching one at a time would take about a second per host.
const setupParallel = 24

func crowdScenario() Scenario {
	return Scenario{
		Name:        "crowd",
		Description: fmt.Sprintf("%d clients knock at once; each gets in, only they do, with knock-to-open latency", crowdClients),
		Tags:        []string{TagLoad},
		Needs:       []Need{NeedEvents, NeedNftables},
		Run:         runCrowd,
	}
}

func runCrowd(ctx context.Context, r *Run) error {
	server, err := r.Net.AddHost("server")
	if err != nil {
		return err
	}
	names := []string{"bystander"}
	for i := range crowdClients {
		names = append(names, fmt.Sprintf("c%03d", i))
	}
	hosts := make([]*netsim.Host, len(names))
	if err := parallelN(len(names), func(i int) (err error) {
		hosts[i], err = r.Net.AddHost(names[i])
		return err
	}); err != nil {
		return err
	}
	lan, err := r.Net.LAN("lan", server)
	if err != nil {
		return err
	}
	if err := parallelN(len(hosts), func(i int) error {
		_, err := lan.Attach(hosts[i])
		return err
	}); err != nil {
		return err
	}
	bystander, clients := hosts[0], hosts[1:]
	r.Step("LAN %s: server %s, bystander %s and %d clients", lan.Prefix4(), server.Addr4(), bystander.Addr4(), len(clients))
	d, err := setupDoorman(ctx, r, server, lan.End(server).Name, lan.Prefix4())
	if err != nil {
		return err
	}
	svc := netip.AddrPortFrom(server.Addr4(), scenSvcPort)

	type result struct {
		sent time.Time
		lat  time.Duration
		conn net.Conn
		err  error
	}
	results := make([]result, len(clients))
	// Each client's sockets are made before the knocks, so that what is
	// timed is the door, not a hundred threads entering namespaces.
	probers := make([]*prober, len(clients))
	defer func() {
		for _, p := range probers {
			if p != nil {
				p.Close()
			}
		}
	}()
	if err := parallelN(len(clients), func(i int) (err error) {
		probers[i], err = newProber(clients[i], clients[i].Addr4(), 32)
		return err
	}); err != nil {
		return err
	}
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			sent, err := knockFrom(c, server.Addr4())
			if err != nil {
				results[i].err = err
				return
			}
			dctx, cancel := context.WithTimeout(ctx, scenWaitfor)
			defer cancel()
			conn, at, err := probers[i].connect(dctx, svc, crowdProbe)
			results[i] = result{sent: sent, lat: at.Sub(sent), conn: conn, err: err}
		}()
	}
	// The bystander tries throughout, while a hundred broad doors stand
	// open for other addresses.
	var byConn net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-gate
		dctx, cancel := context.WithTimeout(ctx, scenWaitfor)
		defer cancel()
		byConn, _ = dialOpenFrom(dctx, bystander, svc, 100*time.Millisecond)
	}()
	r.Step("%d clients knock at once and connect; the bystander tries to connect without knocking", len(clients))
	close(gate)
	wg.Wait()

	var lats []time.Duration
	var failures []string
	for i, res := range results {
		if res.err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", clients[i].Name(), res.err))
			continue
		}
		lats = append(lats, res.lat)
	}
	r.Check(len(failures) == 0, "all %d clients got in (%d failed)%s", len(clients), len(failures), firstFewErrs(failures))
	if byConn != nil {
		byConn.Close()
	}
	r.Check(byConn == nil, "the bystander never got in")
	if len(lats) > 0 {
		slices.Sort(lats)
		r.Step("knock-to-open latency over %d clients (each starts a connection attempt every %v for %d attempts, then every %v, keeping the earlier ones in flight as knocker.DialOpen does every %v, so a SYN that beat the door costs one interval): p50 %v, p99 %v, max %v",
			len(lats), crowdProbe.every, crowdProbe.fast, crowdProbe.slowEvery, knocker.DefaultWaitEvery, latencyPercentile(lats, 50).Round(100*time.Microsecond),
			latencyPercentile(lats, 99).Round(100*time.Microsecond), lats[len(lats)-1].Round(100*time.Microsecond))
		r.Figure("crowd_open_p50", ms(latencyPercentile(lats, 50)), "ms")
		r.Figure("crowd_open_p99", ms(latencyPercentile(lats, 99)), "ms")
	}
	// The client's view above is in steps of the dial interval; the
	// daemon's events say when each door was in force.
	armedAt := map[netip.Addr]time.Time{}
	for _, e := range d.Events() {
		if _, ok := armedAt[e.Src]; !ok && dt.DoorState(dt.StateArmed)(e) {
			armedAt[e.Src] = e.Time
		}
	}
	var armed []time.Duration
	for i, res := range results {
		if t, ok := armedAt[clients[i].Addr4()]; ok && !res.sent.IsZero() {
			armed = append(armed, t.Sub(res.sent))
		}
	}
	if len(armed) > 0 {
		slices.Sort(armed)
		r.Step("knock to door armed (doormand's event) over %d clients: p50 %v, p99 %v, max %v", len(armed),
			latencyPercentile(armed, 50).Round(time.Microsecond*100), latencyPercentile(armed, 99).Round(time.Microsecond*100),
			armed[len(armed)-1].Round(time.Microsecond*100))
		r.Figure("crowd_armed_p50", ms(latencyPercentile(armed, 50)), "ms")
		r.Figure("crowd_armed_p99", ms(latencyPercentile(armed, 99)), "ms")
	}

	knocked := map[netip.Addr]bool{}
	for _, c := range clients {
		knocked[c.Addr4()] = true
	}
	// What the daemon reported: the source of every accepted knock, the
	// client of every door (once however often it was armed), and the
	// source port each door narrowed to.
	var acceptedFrom, openedFor []netip.Addr
	doors := map[uint64]bool{}
	narrowed := map[netip.Addr]uint16{}
	for _, e := range d.Events() {
		switch {
		case dt.Accepted()(e):
			acceptedFrom = append(acceptedFrom, e.Src)
		case dt.DoorState(dt.StateArmed)(e) && !doors[e.Door]:
			doors[e.Door] = true
			openedFor = append(openedFor, e.Src)
		case dt.DoorState(dt.StateNarrow)(e):
			narrowed[e.Src] = e.SrcPort
		}
	}
	r.Check(len(acceptedFrom) == len(clients) && allMembers(acceptedFrom, knocked) && allDistinct(acceptedFrom),
		"doormand accepted %d knocks, one from each knocking host and none from anywhere else", len(acceptedFrom))
	r.Check(len(openedFor) == len(clients) && allMembers(openedFor, knocked) && allDistinct(openedFor),
		"doormand opened %d doors, each for a knocking host's address", len(openedFor))
	r.Check(!slices.Contains(acceptedFrom, bystander.Addr4()) && !slices.Contains(openedFor, bystander.Addr4()),
		"no knock or door for the bystander %s", bystander.Addr4())
	// Each door narrows to the source port of the SYN that claimed it; the
	// connection the client kept must be that one, or the client got in on
	// a connection no door tracks.
	var untracked []string
	for i, res := range results {
		if res.conn == nil {
			continue
		}
		port := res.conn.LocalAddr().(*net.TCPAddr).AddrPort().Port()
		if src := clients[i].Addr4(); narrowed[src] != port {
			untracked = append(untracked, fmt.Sprintf("%s connected from port %d, door narrowed to %d", src, port, narrowed[src]))
		}
	}
	r.Check(len(untracked) == 0, "every client's connection is the one its door narrowed to (%d are not)%s", len(untracked), firstFewErrs(untracked))
	for _, res := range results {
		if res.conn != nil {
			res.conn.Close()
		}
	}
	ended := dt.Closed("connection-ended")
	d.waitN(ended, len(clients), 5*time.Second, "every door closed after its connection ended (%d doors)", len(clients))
	return d.stop()
}

// FloodOptions set the flood scenarios' load.
type FloodOptions struct {
	// Rate is the junk rate in datagrams per second; 0 means 200000.
	Rate int
	// Duration is how long the attacker floods; 0 means 5 s.
	Duration time.Duration
	// Knocks is how many legitimate knocks come during the flood, at most
	// maxTimedKnocks; 0 means 20.
	Knocks int
}

func (o FloodOptions) withDefaults() FloodOptions {
	if o.Rate <= 0 {
		o.Rate = 200000
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Knocks <= 0 {
		o.Knocks = 20
	}
	o.Knocks = min(o.Knocks, maxTimedKnocks)
	return o
}

// Flood returns the flood scenario with the given load: a junk flood at the
// knock port while a client knocks and connects, reporting the rate the
// daemon absorbed, its CPU per datagram and the legitimate knocks' latency.
func Flood(o FloodOptions) Scenario {
	o = o.withDefaults()
	return Scenario{
		Name: "flood",
		Description: fmt.Sprintf("%d junk datagrams/s at the knock port while a client knocks and connects: absorbed rate, daemon CPU per datagram, knock latency",
			o.Rate),
		Tags:  []string{TagLoad},
		Needs: []Need{NeedDoormand, NeedNftables, NeedPacket},
		Run:   func(ctx context.Context, r *Run) error { return runFlood(ctx, r, o, false) },
	}
}

// FloodModern is Flood with modern junk (knocks sealed for other doormen,
// which doormand drops at mac1 before any public-key work) and modern
// legitimate knocks.
func FloodModern(o FloodOptions) Scenario {
	o = o.withDefaults()
	return Scenario{
		Name: "flood-modern",
		Description: fmt.Sprintf("%d modern junk datagrams/s (knocks for other doormen) while a client knocks modern and connects: daemon CPU per datagram, knock latency",
			o.Rate),
		Tags:  []string{TagModern, TagLoad},
		Needs: []Need{NeedDoormand, NeedNftables, NeedPacket},
		Run:   func(ctx context.Context, r *Run) error { return runFlood(ctx, r, o, true) },
	}
}

func runFlood(ctx context.Context, r *Run, o FloodOptions, modern bool) error {
	lab, err := perfLAN(ctx, r, perfSetup{names: []string{"client", "attacker"}, modern: modern})
	if err != nil {
		return err
	}
	client, attacker := lab.others["client"], lab.others["attacker"]
	pid := lab.d.Pid()
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if !r.Check(strings.TrimSpace(string(comm)) == "doormand", "pid %d is the doormand process (comm %q)", pid, strings.TrimSpace(string(comm))) {
		return nil
	}
	addrs, err := extraAddrs(lab.lan.End(client), lab.server, o.Knocks)
	if err != nil {
		return err
	}
	knockAddr := netip.AddrPortFrom(lab.server.Addr4, scenKnockPort)
	prefix, kinds, payload := "flood", classicJunk, classicFor
	if modern {
		prefix, kinds = "flood_modern", modernJunk
		payload = func(src netip.Addr) ([]byte, error) {
			return lab.keys.seal(lab.keys.server.Public(), protocol.Request{Port: scenSvcPort, Source: src})
		}
	}
	var names []string
	for _, k := range kinds {
		names = append(names, k.name)
	}
	kind := strings.Join(names, ", ")
	pools, err := makePools(kinds, floodPool/len(kinds))
	if err != nil {
		return err
	}
	pool := interleave(pools)
	rx0, err := rxPackets(lab.server.Host, lab.server.Name)
	if err != nil {
		return err
	}
	m, err := startCPU(pid)
	if err != nil {
		return err
	}
	r.Step("attacker %s floods %s with junk at %d datagrams/s for %v (%s); client knocks %d times from %d addresses of its own",
		attacker.Addr4(), knockAddr, o.Rate, o.Duration, kind, o.Knocks, len(addrs))
	var fl floodResult
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		fl = flood(ctx, lab.lan.End(attacker), lab.server, knockAddr, pool, o.Rate, o.Duration)
	}()
	var ks []timedKnock
	for _, a := range addrs {
		// Spread the knocks over the flood.
		time.Sleep(o.Duration / time.Duration(o.Knocks+1))
		p, err := payload(a)
		if err != nil {
			return err
		}
		ks = append(ks, lab.knockAndConnect(ctx, client, a, p))
	}
	<-floodDone
	cpu, _, err := m.stop()
	if err != nil {
		return err
	}
	rx1, err := rxPackets(lab.server.Host, lab.server.Name)
	if err != nil {
		return err
	}
	if fl.err != nil {
		r.Step("flood sender stopped early: %v", fl.err)
	}
	// Let the daemon drain its ring before reading the counters.
	time.Sleep(300 * time.Millisecond)
	ev, err := lab.d.Counters(5 * time.Second)
	if err != nil {
		return err
	}
	counters := ev.Counters
	var counted uint64
	var parts []string
	for _, name := range sortedCounterNames(counters) {
		parts = append(parts, fmt.Sprintf("%s=%d", name, counters[name]))
		if !doorCounters[name] {
			counted += counters[name]
		}
	}
	secs := fl.elapsed.Seconds()
	sendRate := float64(fl.sent) / secs
	rx := rx1 - rx0
	r.Step("junk sent: %d datagrams in %.2fs = %.0f/s (requested %d/s%s); the server's %s received %d packets",
		fl.sent, secs, sendRate, o.Rate, rateShortfall(sendRate, o.Rate), lab.server.Name, rx)
	r.Step("daemon counters after the flood: %s", strings.Join(parts, " "))
	r.Step("junk counted by the daemon: %d (every packet reason; not accepted knocks or door events), "+
		"%.1f%% of the %d knock-shaped datagrams sent; the other %d, random bytes, the kernel prefilter drops uncounted",
		counted, percentOf(counted, fl.shaped), fl.shaped, fl.sent-fl.shaped)
	r.Step("doormand CPU while flooded (%.2fs): %v = %.1f%% of one core; it covers the daemon's reading of the ring, "+
		"not the kernel's filtering and copying into it, which runs in the sender's softirq", secs, cpu.Round(time.Millisecond), sharePct(cpu, fl.elapsed))
	r.Figure(prefix+"_sent_rate", sendRate, "pkt/s")
	r.Figure(prefix+"_rx_rate", float64(rx)/secs, "pkt/s")
	r.Figure(prefix+"_counted_rate", float64(counted)/secs, "pkt/s")
	r.Figure(prefix+"_counted_share", percentOf(counted, fl.shaped), "%")
	r.Figure(prefix+"_cpu", sharePct(cpu, fl.elapsed), "%core")
	if rx > 0 {
		per := float64(cpu.Nanoseconds()) / float64(rx)
		r.Figure(prefix+"_ns_per_datagram", per, "ns/pkt")
		if per > 0 {
			r.Figure(prefix+"_projected_per_core", 1e9/per, "pkt/s")
		}
	}
	if counted > 0 {
		r.Figure(prefix+"_ns_per_counted", float64(cpu.Nanoseconds())/float64(counted), "ns/pkt")
	}
	st := lab.stats(ks)
	st.figures(r, prefix+"_knock")

	// Each kind alone, for its own cost: the mix above hides that random
	// bytes cost doormand nothing and a wrong MAC costs a MAC.
	phase := min(o.Duration/time.Duration(len(kinds)), time.Second)
	for i, k := range kinds {
		pool := pools[i]
		rx0, err := rxPackets(lab.server.Host, lab.server.Name)
		if err != nil {
			return err
		}
		m, err := startCPU(pid)
		if err != nil {
			return err
		}
		fl := flood(ctx, lab.lan.End(attacker), lab.server, knockAddr, pool, o.Rate, phase)
		time.Sleep(50 * time.Millisecond) // the last blocks retire
		cpu, _, err := m.stop()
		if err != nil {
			return err
		}
		rx1, err := rxPackets(lab.server.Host, lab.server.Name)
		if err != nil {
			return err
		}
		if fl.err != nil || rx1 == rx0 {
			r.Step("flood of %s junk alone failed: %v (%d received)", k.name, fl.err, rx1-rx0)
			continue
		}
		per := float64(cpu.Nanoseconds()) / float64(rx1-rx0)
		r.Step("%s junk alone: %d datagrams in %.2fs (%.0f/s), doormand CPU %v = %.0f ns each",
			k.name, rx1-rx0, fl.elapsed.Seconds(), float64(fl.sent)/fl.elapsed.Seconds(), cpu.Round(time.Microsecond), per)
		r.Figure(prefix+"_ns_per_"+k.name, per, "ns/pkt")
	}

	r.Check(fl.sent > 0, "the attacker sent junk (%d datagrams)", fl.sent)
	r.Check(st.ok == o.Knocks, "every legitimate knock during the flood got in (%d of %d)%s", st.ok, o.Knocks, firstFewErrs(st.failures))
	r.Check(counters["accepted"] == uint64(o.Knocks), "doormand accepted exactly the %d legitimate knocks (accepted=%d)", o.Knocks, counters["accepted"])
	if modern {
		r.Check(counters["bad-mac1"] > 0 && counters["bad-mac1"] <= uint64(fl.shaped),
			"the knocks for other doormen were dropped at mac1 (bad-mac1=%d of %d sent)", counters["bad-mac1"], fl.shaped)
	}
	return lab.d.stop()
}

// doorCounters are the counters of accepted knocks and of doors, which junk
// never reaches.
var doorCounters = map[string]bool{"accepted": true, "syn": true, "late-claim": true, "rearmed": true, "firewall-error": true}

// rateShortfall says so when the sender did not reach the requested rate.
func rateShortfall(got float64, want int) string {
	if got < 0.95*float64(want) {
		return fmt.Sprintf("; this machine generated only %.0f%% of it", got/float64(want)*100)
	}
	return ""
}

func percentOf(a uint64, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b) * 100
}

// floodResult is what the flood sender achieved.
type floodResult struct {
	sent    int
	shaped  int // of sent, the knock-shaped ones (see knockShaped)
	elapsed time.Duration
	err     error
}

// maxSealed bounds the distinct knocks badMAC1Pool seals.
const maxSealed = 256

// floodPool is how many distinct payloads a flood cycles through.
const floodPool = 3072

// floodBatch is how many datagrams one sendmmsg carries.
const floodBatch = 64

// floodSenders is how many sockets (and goroutines) the flood uses: one
// cannot reach 200000 datagrams/s through a veth and bridge on a small
// machine, since each send carries the packet through the receive path.
const floodSenders = 2

// flood sends pool's payloads from the attacker's end to dst at the
// server's end at rate per second in total, split over floodSenders
// AF_PACKET sockets (the whole frames are built beforehand, so the sender
// costs no more than the frames' way through the kernel), for at most dur
// and rate×dur datagrams.
func flood(ctx context.Context, from, to *netsim.LinkEnd, dst netip.AddrPort, pool [][]byte, rate int, dur time.Duration) floodResult {
	res := make([]floodResult, floodSenders)
	var wg sync.WaitGroup
	for i := range floodSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			share := rate / floodSenders
			if i == 0 {
				share += rate % floodSenders
			}
			part := pool[i*len(pool)/floodSenders : (i+1)*len(pool)/floodSenders]
			src := netip.AddrPortFrom(from.Addr4, uint16(40000+i))
			frames := make([][]byte, len(part))
			shaped := 0
			for j, p := range part {
				pkt, err := netsim.UDPPacket(src, dst, p)
				if err != nil {
					res[i].err = err
					return
				}
				frames[j] = append(etherHeader(to.MAC, from.MAC, netsim.EtherTypeIPv4), pkt...)
				if knockShaped(p) {
					shaped++
				}
			}
			s, err := newFrameSender(from, to.MAC)
			if err != nil {
				res[i].err = err
				return
			}
			defer s.Close()
			sent, took, err := sendPaced(ctx, s, frames, share, dur)
			// Round-robin from the start: whole rounds, then a prefix.
			res[i] = floodResult{sent: sent, shaped: sent/len(part)*shaped + countShaped(part[:sent%len(part)]), elapsed: took, err: err}
		}()
	}
	wg.Wait()
	var total floodResult
	for _, r := range res {
		total.sent += r.sent
		total.shaped += r.shaped
		total.elapsed = max(total.elapsed, r.elapsed)
		total.err = errors.Join(total.err, r.err)
	}
	return total
}

// etherHeader returns an Ethernet header dst ← src of type etherType.
func etherHeader(dst, src net.HardwareAddr, etherType uint16) []byte {
	h := make([]byte, 14, 14+128)
	copy(h, dst)
	copy(h[6:], src)
	h[12], h[13] = byte(etherType>>8), byte(etherType)
	return h
}

func countShaped(pool [][]byte) int {
	n := 0
	for _, p := range pool {
		if knockShaped(p) {
			n++
		}
	}
	return n
}

// junkKind is one kind of junk a flood sends: a name for its figures and
// a maker of n payloads of it.
type junkKind struct {
	name string
	make func(n int) ([][]byte, error)
}

// classicJunk are the kinds of the flood scenario: random bytes, which the
// daemon's kernel prefilter drops before user space, uncounted
// (CLASSIC-2.3: a knock starts with its port's digits); and well-formed
// knocks it must read and count (knockShaped): for the real guest with a
// wrong MAC, which costs the MAC's computation, and for guests that do not
// exist.
var classicJunk = []junkKind{
	{"random", randomPool},
	{"bad_mac", func(n int) ([][]byte, error) { return classicPool(n, func(int) string { return scenGuest }) }},
	{"unknown_guest", func(n int) ([][]byte, error) {
		return classicPool(n, func(i int) string { return fmt.Sprintf("nobody%d", i) })
	}},
}

// modernJunk are the kinds of the flood-modern scenario: random bytes, and
// modern knocks that are well formed but sealed for other doormen, so
// their mac1 does not match: what doormand must read and drop before any
// public-key work (MODERN-12.6).
var modernJunk = []junkKind{{"random", randomPool}, {"bad_mac1", badMAC1Pool}}

// makePools makes n payloads of each kind.
func makePools(kinds []junkKind, n int) ([][][]byte, error) {
	pools := make([][][]byte, len(kinds))
	for i, k := range kinds {
		var err error
		if pools[i], err = k.make(n); err != nil {
			return nil, err
		}
	}
	return pools, nil
}

// interleave returns the payloads of pools, one of each in turn.
func interleave(pools [][][]byte) [][]byte {
	var mixed [][]byte
	for i := 0; ; i++ {
		for _, p := range pools {
			if i >= len(p) {
				return mixed
			}
			mixed = append(mixed, p[i])
		}
	}
}

// randomPool returns n random payloads of 1 to 63 bytes that start with
// neither a digit nor the modern magic.
func randomPool(n int) ([][]byte, error) {
	rnd := make([]byte, n*64)
	if _, err := rand.Read(rnd); err != nil {
		return nil, err
	}
	pool := make([][]byte, n)
	for i := range pool {
		b := rnd[i*64 : (i+1)*64]
		b[0] |= 0x80
		if b[0] == protocol.ModernMagic {
			b[0]++
		}
		pool[i] = b[:1+int(b[1])%63]
	}
	return pool, nil
}

// classicPool returns n well-formed classic knocks for scenSvcPort with
// random tags and MACs, the i-th for group(i).
func classicPool(n int, group func(i int) string) ([][]byte, error) {
	rnd := make([]byte, n*20)
	if _, err := rand.Read(rnd); err != nil {
		return nil, err
	}
	pool := make([][]byte, n)
	for i := range pool {
		b := rnd[i*20 : (i+1)*20]
		k, err := protocol.NewKnock(scenSvcPort, group(i), binary.BigEndian.Uint32(b), b[4:20])
		if err != nil {
			return nil, err
		}
		pool[i] = k.AppendPayload(nil)
	}
	return pool, nil
}

// badMAC1Pool returns n modern knocks sealed for eight other doormen:
// maxSealed different ones, repeated, since sealing costs public-key work
// (most of a millisecond on a small machine) and doormand cannot tell a
// repeat before the mac1 check anyway.
func badMAC1Pool(n int) ([][]byte, error) {
	var others [8]protocol.PublicKey
	for i := range others {
		k, err := protocol.NewPrivateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		others[i] = k.Public()
	}
	client, err := protocol.NewPrivateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	now := uint64(time.Now().UnixNano())
	pool := make([][]byte, n)
	for i := range pool {
		if i >= maxSealed {
			pool[i] = pool[i%maxSealed]
			continue
		}
		req := protocol.Request{Time: now + uint64(i), Port: scenSvcPort}
		if pool[i], err = protocol.SealKnock(nil, &client, others[i%len(others)], &req, rand.Reader); err != nil {
			return nil, err
		}
	}
	return pool, nil
}

// knockShaped tells the knocks of the junk pools from their random bytes:
// what the kernel prefilter lets through to doormand.
func knockShaped(p []byte) bool { return len(p) > 0 && (p[0] < 0x80 || p[0] == protocol.ModernMagic) }

// knockFrom sends one fresh knock for scenSvcPort from h to dst's knock
// port and returns when it was sent.
func knockFrom(h *netsim.Host, dst netip.Addr) (time.Time, error) {
	payload, err := classicPayload()
	if err != nil {
		return time.Time{}, err
	}
	return sendUDPFrom(h, netip.Addr{}, netip.AddrPortFrom(dst, scenKnockPort), payload)
}

// dialOpenFrom is knocker.DialOpen with every attempt made from inside h.
func dialOpenFrom(ctx context.Context, h *netsim.Host, dst netip.AddrPort, every time.Duration) (net.Conn, error) {
	c, _, err := knocker.DialOpenFunc(ctx, func(ctx context.Context) (net.Conn, error) {
		var c net.Conn
		err := h.Do(func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, "tcp", dst.String())
			return err
		})
		return c, err
	}, every)
	return c, err
}

// parallelN runs fn(0..n-1) with at most setupParallel at once and
// returns the errors joined.
func parallelN(n int, fn func(i int) error) error {
	sem := make(chan struct{}, setupParallel)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// latencyPercentile returns the p-th percentile (nearest rank) of sorted.
func latencyPercentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func allMembers(xs []netip.Addr, set map[netip.Addr]bool) bool {
	for _, x := range xs {
		if !set[x] {
			return false
		}
	}
	return true
}

func allDistinct(xs []netip.Addr) bool {
	seen := map[netip.Addr]bool{}
	for _, x := range xs {
		if seen[x] {
			return false
		}
		seen[x] = true
	}
	return true
}

func firstFewErrs(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	if len(xs) > 3 {
		xs = xs[:3]
	}
	return ": " + strings.Join(xs, "; ")
}

func sortedCounterNames(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPUTicks returns utime+stime of pid in clock ticks.
func procCPUTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may contain spaces; fields after it
	// start with the state (field 3); utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return ut + st, nil
}

// daemonConfig describes one doormand of the linktypes scenario.
type daemonConfig struct {
	name    string // sub-directory of the run's directory
	iface   string
	extra   string // more doormand.cf lines (capture, link-header-length)
	hexdump bool   // run with -X
}

// startDoormanWith starts doormand in server for dc, allowing the guest
// from 198.18.0.0/15 and 127.0.0.0/8. The server's ruleset and service
// must already be in place.
func startDoormanWith(ctx context.Context, r *Run, server *netsim.Host, dc daemonConfig) (*doorman, error) {
	dir := filepath.Join(r.Dir, dc.name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	opts := strings.Split(strings.TrimSpace(dc.extra), "\n")
	if dc.hexdump {
		opts = append(opts, "-X")
	}
	r.Step("start doormand on %s (%s)", dc.iface, strings.Join(opts, ", "))
	return startDoorman(ctx, r, server, dir, dt.Options{
		Config:  dt.Config(dc.iface, scenWaitfor, "firewall nftables", "nft-table doorman", dc.extra),
		Guests:  fmt.Sprintf("%s %s %d 198.18.0.0/15 127.0.0.0/8\n", scenGuest, scenSecret, scenSvcPort),
		HexDump: dc.hexdump,
	})
}
