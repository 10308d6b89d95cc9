//go:build linux

package sim

import (
	"context"
	"crypto/rand"
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
	"syscall"
	"time"

	dt "github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
	"github.com/doorman-project/doorman/knocker"
	"github.com/doorman-project/doorman/protocol"
	"golang.org/x/net/ipv4"
)

// crowdClients is how many clients knock at once in the crowd scenario.
const crowdClients = 100

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
		lat  time.Duration
		conn net.Conn
		err  error
	}
	results := make([]result, len(clients))
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
			conn, err := dialOpenFrom(dctx, c, svc, knocker.DefaultWaitEvery)
			results[i] = result{lat: time.Since(sent), conn: conn, err: err}
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
		r.Step("knock-to-open latency over %d clients (each retries its dial every %v, like knocker.DialOpen, so a SYN that beat the door costs one interval): p50 %v, p99 %v, max %v",
			len(lats), knocker.DefaultWaitEvery, latencyPercentile(lats, 50).Round(time.Millisecond), latencyPercentile(lats, 99).Round(time.Millisecond),
			lats[len(lats)-1].Round(time.Millisecond))
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

// FloodOptions set the flood scenario's load.
type FloodOptions struct {
	// Rate is the junk rate in datagrams per second; 0 means a light
	// 20000, enough to exercise the path in tests.
	Rate int
	// Duration is how long the attacker floods; 0 means 2 s.
	Duration time.Duration
}

// Flood returns the flood scenario with the given load: a junk flood at the
// knock port while a client knocks and connects, reporting the rate the
// daemon absorbed, its CPU and the legitimate knocks' latency.
func Flood(o FloodOptions) Scenario {
	if o.Rate <= 0 {
		o.Rate = 20000
	}
	if o.Duration <= 0 {
		o.Duration = 2 * time.Second
	}
	return Scenario{
		Name:        "flood",
		Description: "a junk flood at the knock port while a client knocks and connects: absorbed rate, daemon CPU, latency",
		Tags:        []string{TagLoad},
		Needs:       []Need{NeedDoormand, NeedNftables},
		Run:         func(ctx context.Context, r *Run) error { return runFlood(ctx, r, o.Rate, o.Duration) },
	}
}

// floodKnocks is how many times the legitimate client knocks during the flood.
const floodKnocks = 3

func runFlood(ctx context.Context, r *Run, rate int, dur time.Duration) error {
	t, d, err := lanWith(ctx, r, "client", "attacker")
	if err != nil {
		return err
	}
	client, attacker := t.others["client"], t.others["attacker"]
	pid := d.Pid()
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if !r.Check(strings.TrimSpace(string(comm)) == "doormand", "pid %d is the doormand process (comm %q)", pid, strings.TrimSpace(string(comm))) {
		return nil
	}
	knockAddr := netip.AddrPortFrom(t.server.Addr4(), scenKnockPort)
	pool, err := junkPool(4096)
	if err != nil {
		return err
	}

	cpu0, err := procCPUTicks(pid)
	if err != nil {
		return err
	}
	wall0 := time.Now()
	r.Step("attacker %s floods %s with junk at %d datagrams/s for %v (random bytes, well-formed knocks with bad MACs, unknown guests)",
		attacker.Addr4(), knockAddr, rate, dur)
	var fl floodResult
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		fl = flood(ctx, attacker, knockAddr, pool, rate, dur)
	}()

	var lats []time.Duration
	got := 0
	for i := range floodKnocks {
		// Spread the knocks over the flood.
		time.Sleep(dur / (floodKnocks + 1))
		sent, err := knockFrom(client, t.server.Addr4())
		if err != nil {
			return err
		}
		dctx, cancel := context.WithTimeout(ctx, scenWaitfor)
		c, err := dialOpenFrom(dctx, client, netip.AddrPortFrom(t.server.Addr4(), scenSvcPort), knocker.DefaultWaitEvery)
		cancel()
		if err != nil {
			r.Step("legitimate knock %d of %d: not in within waitfor: %v", i+1, floodKnocks, err)
			continue
		}
		lat := time.Since(sent)
		got++
		lats = append(lats, lat)
		r.Step("legitimate knock %d of %d: in after %v", i+1, floodKnocks, lat.Round(time.Millisecond))
		c.Close()
	}
	<-floodDone
	if fl.err != nil {
		r.Step("flood sender stopped early: %v", fl.err)
	}
	// Let the daemon drain its socket before reading the counters.
	time.Sleep(500 * time.Millisecond)
	cpu1, err := procCPUTicks(pid)
	if err != nil {
		return err
	}
	wall := time.Since(wall0)
	ev, err := d.Counters(5 * time.Second)
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
	sendRate := float64(fl.sent) / fl.elapsed.Seconds()
	absorbed := float64(counted) / fl.elapsed.Seconds()
	cpuPct := float64(cpu1-cpu0) / clockTicks / wall.Seconds() * 100
	r.Step("junk sent: %d datagrams in %.2fs = %.0f/s (requested %d/s%s)", fl.sent, fl.elapsed.Seconds(), sendRate, rate, rateShortfall(sendRate, rate))
	r.Step("daemon counters after the flood: %s", strings.Join(parts, " "))
	r.Step("junk counted by the daemon: %d (every packet reason; not accepted knocks or door events) = absorbed %.0f/s, "+
		"%.1f%% of the %d knock-shaped datagrams sent; the other %d, random bytes, the kernel prefilter drops uncounted",
		counted, absorbed, percentOf(counted, fl.shaped), fl.shaped, fl.sent-fl.shaped)
	r.Step("doormand CPU over %.2fs: %.2fs = %.0f%% of one core", wall.Seconds(), float64(cpu1-cpu0)/clockTicks, cpuPct)
	if len(lats) > 0 {
		slices.Sort(lats)
		r.Step("legitimate knock-to-open latency during the flood: min %v, median %v, max %v",
			lats[0].Round(time.Millisecond), latencyPercentile(lats, 50).Round(time.Millisecond), lats[len(lats)-1].Round(time.Millisecond))
	}
	r.Check(fl.sent > 0, "the attacker sent junk (%d datagrams)", fl.sent)
	r.Check(got == floodKnocks, "every legitimate knock during the flood got in (%d of %d)", got, floodKnocks)
	r.Check(counted*10 >= uint64(fl.shaped)*9, "ABSORBED RATE: the daemon counted >= 90%% of the knock-shaped junk sent (%d of %d, %.1f%%, %.0f/s)",
		counted, fl.shaped, percentOf(counted, fl.shaped), absorbed)
	r.Check(counters["accepted"] == floodKnocks, "doormand accepted exactly the %d legitimate knocks (accepted=%d)", floodKnocks, counters["accepted"])
	return d.stop()
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
	shaped  int // of sent, the knock-shaped ones (see junkPool)
	elapsed time.Duration
	err     error
}

// floodBatch is how many datagrams one sendmmsg carries.
const floodBatch = 64

// floodSenders is how many sockets (and goroutines) the flood uses: one
// cannot reach 200000 datagrams/s through a veth and bridge on a small
// machine, since each send carries the packet through the receive path.
const floodSenders = 2

// flood sends pool's payloads from h to dst at rate per second in total,
// split over floodSenders sockets, for at most dur and rate×dur datagrams.
func flood(ctx context.Context, h *netsim.Host, dst netip.AddrPort, pool [][]byte, rate int, dur time.Duration) floodResult {
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
			res[i] = floodOne(ctx, h, dst, pool[i*len(pool)/floodSenders:(i+1)*len(pool)/floodSenders], share, dur)
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

// floodOne sends pool's payloads round-robin from h to dst at rate per
// second, paced per batch, for at most dur and rate×dur datagrams. It
// sends as fast as it can when it falls behind, but never past dur.
func floodOne(ctx context.Context, h *netsim.Host, dst netip.AddrPort, pool [][]byte, rate int, dur time.Duration) floodResult {
	var conn *net.UDPConn
	err := h.Do(func() error {
		var err error
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return floodResult{err: err}
	}
	defer conn.Close()
	conn.SetWriteBuffer(4 << 20)
	// A connected socket: the messages carry no address, and sendmmsg
	// sends a batch in one system call.
	pc := ipv4.NewPacketConn(conn)
	total := int(float64(rate) * dur.Seconds())
	msgs := make([]ipv4.Message, floodBatch)
	for i := range msgs {
		msgs[i].Buffers = make([][]byte, 1)
	}
	start := time.Now()
	deadline := start.Add(dur)
	res := floodResult{}
	next := 0
	for res.sent < total && ctx.Err() == nil {
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		due := start.Add(time.Duration(float64(res.sent) / float64(rate) * float64(time.Second)))
		if wait := due.Sub(now); wait > 0 {
			time.Sleep(wait)
		}
		n := min(floodBatch, total-res.sent)
		for i := range n {
			msgs[i].Buffers[0] = pool[next]
			next = (next + 1) % len(pool)
		}
		w, err := pc.WriteBatch(msgs[:n], 0)
		res.sent += w
		for i := range w {
			if knockShaped(msgs[i].Buffers[0]) {
				res.shaped++
			}
		}
		if err != nil && !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOBUFS) {
			res.err = err
			break
		}
	}
	res.elapsed = time.Since(start)
	return res
}

// junkPool returns n junk payloads: a third random bytes that do not start
// with a digit, a third well-formed knocks for the real guest with random
// MACs, a third well-formed knocks for guests that do not exist. The
// random bytes are what the daemon's kernel prefilter drops before user
// space, uncounted (CLASSIC-2.3: a knock starts with its port's digits);
// the knocks are what it must read and count (knockShaped).
func junkPool(n int) ([][]byte, error) {
	rnd := make([]byte, n*64)
	if _, err := rand.Read(rnd); err != nil {
		return nil, err
	}
	pool := make([][]byte, 0, n)
	for i := range n {
		b := rnd[i*64 : (i+1)*64]
		switch i % 3 {
		case 0:
			b[0] |= 0x80
			pool = append(pool, b[:1+int(b[1])%63])
		default:
			group := scenGuest
			if i%3 == 2 {
				group = fmt.Sprintf("nobody%d", i)
			}
			var tag uint32 = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			k, err := protocol.NewKnock(scenSvcPort, group, tag, b[4:20])
			if err != nil {
				return nil, err
			}
			pool = append(pool, k.AppendPayload(nil))
		}
	}
	return pool, nil
}

// knockShaped tells the knocks of junkPool from its random bytes.
func knockShaped(p []byte) bool { return len(p) > 0 && p[0] < 0x80 }

// knockFrom sends one fresh knock for scenSvcPort from h to dst's knock
// port and returns when it was sent.
func knockFrom(h *netsim.Host, dst netip.Addr) (time.Time, error) {
	_, payload, err := knocker.Build(knocker.Options{Group: scenGuest, Secret: protocol.Secret(scenSecret), Service: strconv.Itoa(scenSvcPort)})
	if err != nil {
		return time.Time{}, err
	}
	var sent time.Time
	err = h.Do(func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, scenKnockPort)))
		if err != nil {
			return err
		}
		defer c.Close()
		sent = time.Now()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("knock from %s to %s: %w", h.Name(), dst, err)
	}
	return sent, nil
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
