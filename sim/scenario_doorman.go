//go:build linux

package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Scenario constants: the guest, its secret, the knock and service ports.
const (
	scenGuest     = "alice"
	scenSecret    = "s3cretKnock"
	scenKnockPort = 1001
	scenSvcPort   = 2222
	scenWaitfor   = 2 * time.Second
)

// scenPolicyDrop is the server's admin ruleset: drop all input except
// established traffic, loopback and packets doormand's door marked.
const scenPolicyDrop = `table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    meta mark & 0x00100000 == 0x00100000 accept
  }
}
`

// doorman is a doormand running in a server host behind a policy-drop
// ruleset, with a greeting TCP service on scenSvcPort.
type doorman struct {
	r       *Run
	server  *Host
	cfgPath string
	logPath string
	daemon  *exec.Cmd
	waitErr chan error
}

// setupDoorman installs the ruleset, the service and the configuration in
// server and starts doormand. Guests may knock from allowed.
func setupDoorman(ctx context.Context, r *Run, server *Host, ifname string, allowed netip.Prefix) (*doorman, error) {
	d := &doorman{r: r, server: server, cfgPath: filepath.Join(r.Dir, "doormand.cf"), logPath: filepath.Join(r.Dir, "doormand.log")}
	rules := filepath.Join(r.Dir, "ruleset.nft")
	if err := os.WriteFile(rules, []byte(scenPolicyDrop), 0o600); err != nil {
		return nil, err
	}
	if out, err := server.Command(ctx, "nft", "-f", rules).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("server ruleset: %w: %s", err, out)
	}
	cf := fmt.Sprintf("interface %s\nport %d\nwaitfor %d\nconnection-delay-1 500000\nconnection-delay-2 1\n"+
		"guestlist %s/guests\nhash-archive %s/replay\npidfile %s/pid\nloglevel debug\nstats-interval 0\n"+
		"firewall nftables\nnft-table doorman\n",
		ifname, scenKnockPort, int(scenWaitfor/time.Second), r.Dir, r.Dir, r.Dir)
	if err := os.WriteFile(d.cfgPath, []byte(cf), 0o600); err != nil {
		return nil, err
	}
	guests := fmt.Sprintf("%s %s %d %s\n", scenGuest, scenSecret, scenSvcPort, allowed)
	if err := os.WriteFile(filepath.Join(r.Dir, "guests"), []byte(guests), 0o600); err != nil {
		return nil, err
	}
	if err := d.listen(ctx); err != nil {
		return nil, err
	}
	if r.cfg.Artifacts != "" {
		// What the server saw, for Wireshark; Net.Close stops the recorder.
		pcap := fmt.Sprintf("%s-%s.pcap", server.Name(), ifname)
		if _, err := server.Record(ifname, pcap); err != nil {
			return nil, err
		}
		r.Step("recording %s %s to %s", server.Name(), ifname, filepath.Join(r.Dir, pcap))
	}
	r.Step("server %s: policy-drop ruleset, service on :%d, guest %s allowed from %s", server.Addr4(), scenSvcPort, scenGuest, allowed)
	return d, d.start(ctx)
}

// listen starts the greeting service in the server; it stops when ctx
// ends or the namespace goes away.
func (d *doorman) listen(ctx context.Context) error {
	return serveGreeting(ctx, d.server, scenSvcPort)
}

// start runs doormand in the foreground, appending to the log, and waits
// for it to report that it started.
func (d *doorman) start(ctx context.Context) error {
	before := d.count("doormand started")
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := d.server.Command(ctx, filepath.Join(d.r.Bin, "doormand"), "-D", "-f", d.cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start doormand: %w", err)
	}
	d.daemon = cmd
	d.waitErr = make(chan error, 1)
	go func() { d.waitErr <- cmd.Wait(); logf.Close() }()
	d.r.Step("start doormand in %s", d.server.Name())
	if !d.waitLog("doormand started", before+1, 10*time.Second) {
		return fmt.Errorf("doormand did not start; log:\n%s", d.log())
	}
	time.Sleep(100 * time.Millisecond) // the firewall is set up right after the start record
	return nil
}

// stop sends SIGTERM and waits for doormand to exit.
func (d *doorman) stop() error {
	if d.daemon == nil {
		return nil
	}
	d.r.Step("SIGTERM doormand")
	d.daemon.Process.Signal(syscall.SIGTERM)
	defer func() { d.daemon = nil }()
	select {
	case err := <-d.waitErr:
		return err
	case <-time.After(20 * time.Second):
		d.daemon.Process.Kill()
		return errors.New("doormand did not stop within 20s")
	}
}

func (d *doorman) log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

func (d *doorman) count(s string) int { return strings.Count(d.log(), s) }

// waitLog waits until the log holds s at least n times.
func (d *doorman) waitLog(s string, n int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for d.count(s) < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// knock runs the knock client in h.
func (d *doorman) knock(ctx context.Context, h *Host) error {
	d.r.Step("knock from %s (%s) for port %d", h.Name(), h.Addr4(), scenSvcPort)
	out, err := h.Command(ctx, filepath.Join(d.r.Bin, "knock"), "-g", scenGuest, "-s", scenSecret,
		d.server.Addr4().String(), fmt.Sprint(scenSvcPort)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("knock: %w: %s", err, out)
	}
	return nil
}

// payload makes a knock payload with knock --dry-run without sending it.
func (d *doorman) payload(ctx context.Context) ([]byte, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(d.r.Bin, "knock"), "--dry-run", "-g", scenGuest, "-s", scenSecret,
		d.server.Addr4().String(), fmt.Sprint(scenSvcPort)).Output()
	if err != nil {
		return nil, fmt.Errorf("knock --dry-run: %w", err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return []byte(line), nil
}

// send sends payload raw over UDP from h to the knock port.
func (d *doorman) send(h *Host, payload []byte) error {
	d.r.Step("send captured payload raw from %s (%s)", h.Name(), h.Addr4())
	return h.Do(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(d.server.Addr4(), scenKnockPort).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
}

// dial connects from h to the service and reads its greeting; it returns
// nil when the port is closed (the policy drops the SYN).
func (d *doorman) dial(h *Host) net.Conn {
	return dialAt(h, netip.AddrPortFrom(d.server.Addr4(), scenSvcPort), time.Second, 2*time.Second)
}

// checkClosed records a check that the service port is closed from h.
func (d *doorman) checkClosed(h *Host) bool {
	c := d.dial(h)
	if c != nil {
		c.Close()
	}
	return d.r.Check(c == nil, "port %d closed from %s", scenSvcPort, h.Name())
}
