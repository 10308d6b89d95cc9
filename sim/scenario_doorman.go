//go:build linux

package sim

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
)

// Scenario constants: the guest, its secret, the knock and service ports.
const (
	scenGuest     = "alice"
	scenSecret    = "s3cretKnock"
	scenKnockPort = doormandtest.KnockPort
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
// ruleset, with a greeting TCP service on scenSvcPort. Its checks read the
// daemon's event stream.
type doorman struct {
	*doormandtest.Daemon
	r      *Run
	server *netsim.Host
}

// installPolicyDrop loads scenPolicyDrop into h.
func installPolicyDrop(ctx context.Context, r *Run, h *netsim.Host) error {
	cmd := h.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(scenPolicyDrop)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("server ruleset: %w: %s", err, out)
	}
	return nil
}

// setupDoorman installs the ruleset, the service and the configuration in
// server and starts doormand. Guests may knock from allowed.
func setupDoorman(ctx context.Context, r *Run, server *netsim.Host, ifname string, allowed netip.Prefix) (*doorman, error) {
	if err := installPolicyDrop(ctx, r, server); err != nil {
		return nil, err
	}
	if err := doormandtest.Serve(ctx, server, netip.AddrPortFrom(server.Addr4(), scenSvcPort)); err != nil {
		return nil, err
	}
	if r.Artifacts != "" {
		// What the server saw, for Wireshark; Net.Close stops the recorder.
		pcap := fmt.Sprintf("%s-%s.pcap", server.Name(), ifname)
		if _, err := server.Record(ifname, pcap); err != nil {
			return nil, err
		}
		r.Step("recording %s %s to %s", server.Name(), ifname, filepath.Join(r.Dir, pcap))
	}
	r.Step("server %s: policy-drop ruleset, service on :%d, guest %s allowed from %s", server.Addr4(), scenSvcPort, scenGuest, allowed)
	return startDoorman(ctx, r, server, r.Dir, doormandtest.Options{
		Config: doormandtest.Config(ifname, scenWaitfor, "firewall nftables", "nft-table doorman"),
		Guests: fmt.Sprintf("%s %s %d %s\n", scenGuest, scenSecret, scenSvcPort, allowed),
	})
}

// startDoorman starts doormand in server with o, its files in dir.
func startDoorman(ctx context.Context, r *Run, server *netsim.Host, dir string, o doormandtest.Options) (*doorman, error) {
	o.Binary, o.Dir = filepath.Join(r.Bin, "doormand"), dir
	d, err := doormandtest.Start(ctx, server, o)
	if err != nil {
		return nil, err
	}
	r.Step("started doormand in %s (ready: its firewall is in place)", server.Name())
	return &doorman{Daemon: d, r: r, server: server}, nil
}

// restart starts doormand again after a stop or a crash.
func (d *doorman) restart(ctx context.Context) error {
	d.r.Step("start doormand again")
	return d.Restart(ctx)
}

// stop sends SIGTERM and waits for doormand to exit.
func (d *doorman) stop() error {
	d.r.Step("SIGTERM doormand")
	return d.Stop()
}

// kill9 kills doormand with SIGKILL, leaving whatever it had set up.
func (d *doorman) kill9() error {
	d.r.Step("kill -9 doormand")
	return d.Kill()
}

// waitN waits up to within for n events matching m and records a check
// that they came.
func (d *doorman) waitN(m doormandtest.Match, n int, within time.Duration, format string, args ...any) bool {
	_, err := d.Wait(m, n, within)
	if err != nil {
		args = append(args, err)
		return d.r.Check(false, format+" (%v)", args...)
	}
	return d.r.Check(true, format, args...)
}

// knock runs the knock client in h.
func (d *doorman) knock(ctx context.Context, h *netsim.Host) error {
	return d.knockAs(ctx, h, scenGuest, scenSecret, scenSvcPort)
}

// knockAs runs the knock client in h as guest with secret, asking for port.
func (d *doorman) knockAs(ctx context.Context, h *netsim.Host, guest, secret string, port int) error {
	d.r.Step("knock from %s (%s) as %s for port %d", h.Name(), h.Addr4(), guest, port)
	out, err := h.Command(ctx, filepath.Join(d.r.Bin, "knock"), "-g", guest, "-s", secret,
		d.server.Addr4().String(), fmt.Sprint(port)).CombinedOutput()
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
func (d *doorman) send(h *netsim.Host, payload []byte) error {
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
func (d *doorman) dial(h *netsim.Host) net.Conn {
	return doormandtest.Dial(h, netip.AddrPortFrom(d.server.Addr4(), scenSvcPort), time.Second, 2*time.Second)
}

// checkClosed records a check that the service port is closed from h.
func (d *doorman) checkClosed(h *netsim.Host) bool {
	return checkClosedAt(d.r, h, netip.AddrPortFrom(d.server.Addr4(), scenSvcPort))
}

// checkClosedAt records a check that dst is closed from h.
func checkClosedAt(r *Run, h *netsim.Host, dst netip.AddrPort) bool {
	c := doormandtest.Dial(h, dst, time.Second, 2*time.Second)
	if c != nil {
		c.Close()
	}
	return r.Check(c == nil, "port %d closed from %s", dst.Port(), h.Name())
}

// doorElements counts the doors in doormand's nftables sets in the server:
// the set elements naming a client.
func (d *doorman) doorElements(ctx context.Context) (int, error) {
	out, err := d.server.Command(ctx, "nft", "-j", "list", "sets", "inet").CombinedOutput()
	if err != nil {
		return -1, fmt.Errorf("nft list sets: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return countSetElements(out, "doorman")
}

// pollUntil polls cond every 50ms until it holds or within has passed.
func pollUntil(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
