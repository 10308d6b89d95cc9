package main

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dt "github.com/doorman-project/doorman/internal/doormandtest"
)

// These tests run doormand as production runs it (issue "doormand in
// production"): with only the systemd unit's capabilities, under a
// ruleset the administrator reloads, on a link that flaps, reporting to
// systemd, checked by --check. They read events, never the log.

// unitCapabilities reads the capabilities the shipped unit grants
// (CapabilityBoundingSet), so that the test follows the unit.
func unitCapabilities(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../packaging/doormand.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapabilityBoundingSet="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatal("the unit sets no CapabilityBoundingSet")
	return nil
}

// setprivUnit is setpriv with the unit's capabilities as the only ones:
// bounding set, inheritable and ambient, and no new privileges, as
// systemd runs ExecStart (root, CapabilityBoundingSet, AmbientCapabilities,
// NoNewPrivileges).
func setprivUnit(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	caps := "-all"
	for _, c := range unitCapabilities(t) {
		caps += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	return []string{"setpriv", "--bounding-set=" + caps, "--inh-caps=" + caps, "--ambient-caps=" + caps, "--no-new-privs"}
}

// TestIntegrationUnitCapabilities: with exactly the unit's capabilities
// (CAP_NET_ADMIN and CAP_NET_RAW), with each backend, a knock opens one
// connection, and a stop leaves no rule (issue finding 1: setns needed
// CAP_SYS_ADMIN).
func TestIntegrationUnitCapabilities(t *testing.T) {
	for _, c := range []struct{ backend, ruleset string }{
		{"nftables", nftPolicyDrop},
		{"iptables", iptPolicyDrop},
		{"script", iptPolicyDrop},
	} {
		t.Run(c.backend, func(t *testing.T) {
			t.Parallel()
			wrap := setprivUnit(t)
			e := newE2EWith(t, c.backend, c.ruleset, "", "", func(o *dt.Options) { o.Wrap = wrap })
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.d.Pid()))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(status), "CapEff:\t0000000000003000\n") {
				t.Fatalf("doormand runs with other capabilities than CAP_NET_ADMIN and CAP_NET_RAW:\n%s", status)
			}
			e.mustKnock(svcPort)
			e.waitRules(3 * time.Second)
			conn := e.dial(svcPort)
			if conn == nil {
				t.Fatal("door did not open")
			}
			if c2 := e.dial(svcPort); c2 != nil {
				c2.Close()
				t.Fatal("a second connection got in")
			}
			conn.Close()
			if err := e.d.Stop(); err != nil {
				t.Fatalf("doormand exit after SIGTERM: %v\n%s", err, e.d.LogTail(20))
			}
			if r := e.doorRules(); len(r) != 0 {
				t.Fatalf("rules left after the stop: %v", r)
			}
			if out := e.out(e.srv, "nft", "list", "tables"); strings.Contains(out, "doorman") {
				t.Fatalf("table left after the stop: %s", out)
			}
			if out := e.out(e.srv, "iptables", "-S"); strings.Contains(out, "DOORMAN") {
				t.Fatalf("chain left after the stop: %s", out)
			}
		})
	}
}

// TestIntegrationRulesetFlush: the administrator reloads the firewall as
// Debian's nftables.service does ("flush ruleset", then the ruleset), or
// with iptables-restore, under a running doormand with a connection open
// through a door. Within a second knocks open doors again, the open door
// still admits no second connection and closes when its connection ends;
// with protect, the ports are closed again (issue finding 3).
func TestIntegrationRulesetFlush(t *testing.T) {
	iptRestore := `iptables-restore <<'EOF'
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -i lo -j ACCEPT
COMMIT
EOF`
	for _, c := range []struct{ name, backend, ruleset, cfg, reload string }{
		{"nftables", "nftables", nftPolicyDrop, "", "nft flush ruleset\n" + nftPolicyDrop},
		{"nftables-protect", "nftables", "", "protect 2222 22 80\n", "nft flush ruleset"},
		{"iptables", "iptables", iptPolicyDrop, "", "nft flush ruleset\n" + iptRestore},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newE2E(t, c.backend, c.ruleset, c.cfg)
			e.mustKnock(svcPort)
			e.waitRules(3 * time.Second)
			open := e.dial(svcPort)
			if open == nil {
				t.Fatal("door did not open")
			}
			defer open.Close()
			e.waitEvent(dt.DoorState(dt.StateOpen), 3*time.Second, "door open")

			e.sh(e.srv, c.reload)
			flushed := time.Now()
			e.waitEvent(dt.IsKind(dt.KindFirewall).And(func(ev dt.Event) bool { return ev.Repaired }), 3*time.Second,
				"the firewall repaired after the flush")
			t.Logf("repaired %v after the flush", time.Since(flushed).Round(time.Millisecond))

			// Within a second of the repair, a knock opens a door again.
			deadline := time.Now().Add(time.Second)
			var conn2 net.Conn
			for conn2 == nil && time.Now().Before(deadline) {
				conn2 = e.dial(22)
				if conn2 == nil {
					e.mustKnock(22)
					e.waitRules(time.Second)
					conn2 = e.dial(22)
				}
			}
			if conn2 == nil {
				t.Fatal("no door opens after the ruleset was reloaded")
			}
			conn2.Close()
			if c.cfg != "" {
				if c3 := e.dial(80); c3 != nil {
					c3.Close()
					t.Fatal("a protected port is open after the flush")
				}
			}
			// The open door: no second connection, and its connection
			// still carries data and ends it.
			if c4 := e.dial(svcPort); c4 != nil {
				c4.Close()
				t.Fatal("a second connection got in through the open door after the flush")
			}
			if _, err := open.Write([]byte("still here\n")); err != nil {
				t.Fatalf("the open connection broke with the flush: %v", err)
			}
			open.Close()
			e.waitEvent(dt.Closed("connection-ended"), 8*time.Second, "the open door closed when its connection ended")
		})
	}
}

// TestIntegrationLinkFlap: the interface doormand watches goes down and up,
// then is deleted and created again (a new ifindex); doormand keeps
// running and knocks open doors after each (issue finding 5).
func TestIntegrationLinkFlap(t *testing.T) {
	e := newE2E(t, "nftables", nftPolicyDrop, "")
	knockIn := func(what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			e.mustKnock(svcPort)
			if conn := dt.Dial(e.cli, netip.AddrPortFrom(e.srv4, svcPort), time.Second, time.Second); conn != nil {
				conn.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no door within 5 s; log:\n%s", what, e.d.LogTail(30))
			}
		}
	}
	knockIn("before the flap")

	e.sh(e.srv, fmt.Sprintf("ip link set dev %s down; sleep 0.3; ip link set dev %s up", e.srvIf, e.srvIf))
	if !e.d.Running() {
		t.Fatalf("doormand exited when its interface went down; log:\n%s", e.d.LogTail(30))
	}
	knockIn("after down and up")

	// Delete the veth pair (both ends) and create it again with the same
	// names and addresses, as a reconfigured or re-plugged device is.
	bits4 := e.cliNet4.Bits()
	e.sh(e.srv, fmt.Sprintf(`ip link del dev %[1]s
sleep 0.3
ip link add %[1]s type veth peer name %[2]s netns %[3]s
ip addr add %[4]s/%[6]d dev %[1]s
ip -6 addr add %[5]s/64 dev %[1]s nodad
ip link set dev %[1]s up`, e.srvIf, e.cliIf, e.cli.NS(), e.srv4, e.srv6, bits4))
	e.sh(e.cli, fmt.Sprintf(`ip addr add %[2]s/%[4]d dev %[1]s
ip -6 addr add %[3]s/64 dev %[1]s nodad
ip link set dev %[1]s up`, e.cliIf, e.cli4, e.cli6, bits4))
	if !e.d.Running() {
		t.Fatalf("doormand exited when its interface was deleted; log:\n%s", e.d.LogTail(30))
	}
	knockIn("after the interface was created again")
	if err := e.d.Stop(); err != nil {
		t.Fatalf("doormand exit after SIGTERM: %v", err)
	}
}

// TestIntegrationSystemdNotify: doormand tells systemd READY=1 once it is
// ready (with a status line), RELOADING=1 then READY=1 on a reload, a
// STATUS naming a refused reload, and STOPPING=1 (unit Type=notify).
func TestIntegrationSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	msgs := make(chan string, 32)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := l.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(5 * time.Second):
			t.Fatalf("no notification: %s", what)
		}
		return ""
	}
	e := newE2EWith(t, "nftables", nftPolicyDrop, "", "", func(o *dt.Options) { o.Env = []string{"NOTIFY_SOCKET=" + sock} })
	if m := next("ready"); !strings.HasPrefix(m, "READY=1\nSTATUS=serving") {
		t.Fatalf("first notification %q, want READY=1 with a status", m)
	}
	if _, err := e.d.Reload(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	if m := next("reloading"); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("reload notification %q, want RELOADING=1 with MONOTONIC_USEC", m)
	}
	if m := next("reloaded"); !strings.HasPrefix(m, "READY=1\nSTATUS=serving") || !strings.Contains(m, "reloaded at") {
		t.Fatalf("after the reload %q, want READY=1 and the status", m)
	}
	if err := e.d.WriteGuests("alice short 2222\n"); err != nil {
		t.Fatal(err)
	}
	if ev, err := e.d.Reload(3 * time.Second); err != nil || ev.OK {
		t.Fatalf("reload with a broken guest list: %+v, %v; want refused", ev, err)
	}
	next("reloading")
	if m := next("refused"); !strings.HasPrefix(m, "READY=1\nSTATUS=reload refused at") {
		t.Fatalf("after the refused reload %q, want its status", m)
	}
	if err := e.d.Stop(); err != nil {
		t.Fatal(err)
	}
	if m := next("stopping"); m != "STOPPING=1" {
		t.Fatalf("at stop %q, want STOPPING=1", m)
	}
}

// TestIntegrationCheckHost: doormand --check on a server whose policy-drop
// ruleset lacks the accept line for the door mark names the chain and the
// line to add, and exits 3 (warnings); with the line it exits 0; with an
// interface that does not exist it exits 1 (issue findings 4 and 7).
func TestIntegrationCheckHost(t *testing.T) {
	e := newE2E(t, "nftables", "", "")
	if err := e.d.Stop(); err != nil {
		t.Fatal(err)
	}
	check := func(extra string) (string, int) {
		t.Helper()
		cf := filepath.Join(t.TempDir(), "doormand.cf")
		b, err := os.ReadFile(e.d.ConfigPath())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cf, append(b, extra...), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := e.srv.Command(t.Context(), filepath.Join(e.bin, "doormand"), "-D", "-f", cf, "--check").Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := check(""); code != 0 {
		t.Fatalf("--check with no ruleset: exit %d\n%s", code, out)
	}
	e.sh(e.srv, `nft -f - <<'EOF'
table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
  }
}
EOF`)
	out, code := check("")
	if code != 3 || !strings.Contains(out, "inet filter input") || !strings.Contains(out, "0x00100000 == 0x00100000 accept") {
		t.Fatalf("--check on a ruleset without the mark line: exit %d\n%s", code, out)
	}
	e.sh(e.srv, "nft add rule inet filter input meta mark and 0x00100000 == 0x00100000 accept")
	if out, code := check(""); code != 0 {
		t.Fatalf("--check with the mark line: exit %d\n%s", code, out)
	}
	if out, code := check("interface dm-no-such0\n"); code != 1 || !strings.Contains(out, `interface "dm-no-such0": no such network device`) {
		t.Fatalf("--check with a missing interface: exit %d\n%s", code, out)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if l := sc.Text(); !strings.Contains(l, ": error: ") && !strings.Contains(l, ": warning: ") && !strings.Contains(l, "warning(s)") {
			t.Errorf("--check line %q is neither a finding nor the summary", l)
		}
	}
}
