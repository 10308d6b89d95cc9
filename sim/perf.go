//go:build linux

package sim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/doorman-project/doorman/internal/netsim"
	"github.com/vishvananda/netlink"
)

// cpuSample is how much CPU a process had used at one moment: each
// thread's time on a CPU from /proc/PID/task/TID/schedstat (nanoseconds,
// exact), and utime+stime from /proc/PID/stat (clock ticks, 10 ms) for
// when a thread ended between two samples and took its time with it.
type cpuSample struct {
	threads map[string]time.Duration
	ticks   uint64
}

// sampleCPU samples pid's CPU use.
func sampleCPU(pid int) (cpuSample, error) {
	ticks, err := procCPUTicks(pid)
	if err != nil {
		return cpuSample{}, err
	}
	s := cpuSample{threads: map[string]time.Duration{}, ticks: ticks}
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tids, err := os.ReadDir(dir)
	if err != nil {
		return cpuSample{}, err
	}
	for _, t := range tids {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread ended since ReadDir, or no schedstat
			}
			return cpuSample{}, err
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return cpuSample{}, fmt.Errorf("%s/%s/schedstat: %w", dir, t.Name(), err)
		}
		s.threads[t.Name()] = time.Duration(ns)
	}
	return s, nil
}

// cpuSince returns the CPU time used between s0 and s: the exact sum over
// threads when every thread of s0 is still there (and schedstat counted
// anything), else the tick count.
func (s cpuSample) cpuSince(s0 cpuSample) time.Duration {
	exact := len(s.threads) > 0
	for tid := range s0.threads {
		if _, ok := s.threads[tid]; !ok {
			exact = false
		}
	}
	if exact {
		var d time.Duration
		for tid, t := range s.threads {
			d += t - s0.threads[tid]
		}
		if d > 0 || s.ticks == s0.ticks {
			return d
		}
	}
	return time.Duration(s.ticks-s0.ticks) * time.Second / clockTicks
}

// cpuMeter measures the CPU share of a process over a stretch of time.
type cpuMeter struct {
	pid  int
	s0   cpuSample
	wall time.Time
}

func startCPU(pid int) (*cpuMeter, error) {
	s, err := sampleCPU(pid)
	if err != nil {
		return nil, err
	}
	return &cpuMeter{pid: pid, s0: s, wall: time.Now()}, nil
}

// stop returns the CPU time used since startCPU and the wall time passed.
func (m *cpuMeter) stop() (cpu, wall time.Duration, err error) {
	s, err := sampleCPU(m.pid)
	if err != nil {
		return 0, 0, err
	}
	return s.cpuSince(m.s0), time.Since(m.wall), nil
}

// sharePct is cpu as a percentage of one core over wall.
func sharePct(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return float64(cpu) / float64(wall) * 100
}

// procRSS returns pid's resident set (VmRSS) in bytes.
func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: VmRSS %q", pid, rest)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: VmRSS: %w", pid, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// mb converts bytes to MiB for figures.
func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// rxPackets returns how many packets iface in h has received.
func rxPackets(h *netsim.Host, iface string) (uint64, error) {
	var n uint64
	err := h.Do(func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", iface, h.Name(), err)
		}
		if st := l.Attrs().Statistics; st != nil {
			n = st.RxPackets
		}
		return nil
	})
	return n, err
}

// maxExtraAddrs bounds extraAddrs: .250 down to .101 stays clear of the
// addresses netsim hands out from the bottom.
const maxExtraAddrs = 150

// extraAddrs gives end's host n (at most maxExtraAddrs) more IPv4
// addresses of its link, from .250 down (netsim hands out .1, .2, … from
// the bottom, to the few hosts of a scenario's LAN), and
// tells the server their MAC so that the first SYN-ACK to each does not
// wait for ARP, which would count in the latency measured from them.
func extraAddrs(end, server *netsim.LinkEnd, n int) ([]netip.Addr, error) {
	p := end.Prefix4
	if !p.IsValid() || p.Bits() > 24 || n > maxExtraAddrs {
		return nil, fmt.Errorf("extra addresses: %d in %v", n, p)
	}
	base := p.Addr().As4()
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		a := base
		a[3] = byte(250 - i)
		addrs[i] = netip.AddrFrom4(a)
	}
	err := end.Host.Do(func() error {
		l, err := netlink.LinkByName(end.Name)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			ipn := &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
			if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
				return fmt.Errorf("add %v to %s: %w", a, end.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = server.Host.Do(func() error {
		for _, a := range addrs {
			if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: server.IfIndex, Family: netlink.FAMILY_V4,
				State: netlink.NUD_PERMANENT, IP: a.AsSlice(), HardwareAddr: end.MAC}); err != nil {
				return fmt.Errorf("neighbour %v on %s: %w", a, server.Name, err)
			}
		}
		return nil
	})
	return addrs, err
}
