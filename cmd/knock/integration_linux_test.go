package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
)

// doormanSite is a real doormand (nftables backend) guarding a greeting
// service in one network namespace, with a client namespace beside it:
//
//	<run>-cli                          <run>-srv
//	  eth0 198.18.x.1  <------------>    eth0 198.18.x.2
//	  knock, the user's connection       doormand, policy-drop ruleset,
//	                                     service on :2222 ("hello\n")
type doormanSite struct {
	t        *testing.T
	cli, srv *netsim.Host
	bin      string
	home     string // the client's HOME, with no .knockcf
	service  netip.AddrPort
}

const (
	siteSecret  = "s3cretKnock"
	siteService = 2222
)

// sitePolicyDrop is the server admin's ruleset: drop all input except
// established traffic and packets a door marked (README).
const sitePolicyDrop = `table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo accept
    meta mark & 0x00100000 == 0x00100000 accept
  }
}
`

func TestMain(m *testing.M) {
	code := m.Run()
	doormandtest.RemoveBuilt()
	os.Exit(code)
}

func newDoormanSite(t *testing.T) *doormanSite {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (make deps installs it)")
	}
	n := netsim.ForTest(t, "dmknock")
	s := &doormanSite{t: t, bin: doormandtest.Binaries(t), home: t.TempDir()}
	s.cli, s.srv = n.AddHostForTest(t, "cli"), n.AddHostForTest(t, "srv")
	link, err := n.Link(s.cli, s.srv, netsim.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.service = netip.AddrPortFrom(link.B.Addr4, siteService)

	nft := s.srv.Command(t.Context(), "nft", "-f", "-")
	nft.Stdin = strings.NewReader(sitePolicyDrop)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("server ruleset: %v: %s", err, out)
	}
	if err := doormandtest.Serve(t.Context(), s.srv, s.service); err != nil {
		t.Fatal(err)
	}
	d, err := doormandtest.Start(t.Context(), s.srv, doormandtest.Options{
		Binary: filepath.Join(s.bin, "doormand"),
		Dir:    t.TempDir(),
		Config: doormandtest.Config(link.B.Name, 3*time.Second, "firewall nftables"),
		Guests: fmt.Sprintf("alice %s %d %s\n", siteSecret, siteService, link.A.Prefix4),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("doormand stop: %v", err)
		}
		if t.Failed() {
			t.Logf("doormand log:\n%s", d.Log())
		}
	})
	// Ready means the firewall is in place: no sleep needed.
	if c := s.dial(time.Second); c != nil {
		c.Close()
		t.Fatal("the service is reachable before any knock")
	}
	return s
}

// dial is the user's own connection from the client, made once the way ssh
// makes it (the kernel retransmits a lost SYN); nil unless it connects and
// gets the greeting within timeout.
func (s *doormanSite) dial(timeout time.Duration) net.Conn {
	return doormandtest.Dial(s.cli, s.service, timeout, timeout)
}

// knock runs the knock binary in the client with stdin and returns its exit
// status, stdout and stderr.
func (s *doormanSite) knock(stdin string, args ...string) (int, string, string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := s.cli.Command(ctx, filepath.Join(s.bin, "knock"), args...)
	cmd.Env = append(os.Environ(), "HOME="+s.home)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		s.t.Fatalf("knock %q: %v", args, err)
	}
	return 0, stdout.String(), stderr.String()
}

// TestIntegrationReadmeWorkflow runs the README's client examples against a
// real doormand whose doors admit one connection each (CLASSIC-6.2):
// "knock --wait host ssh" followed by the user's own connection, and ssh's
// ProxyCommand "knock --proxy %h %p"; the secret comes from a file
// (CLASSIC-11.5/2, CLASSIC-11.6).
func TestIntegrationReadmeWorkflow(t *testing.T) {
	s := newDoormanSite(t)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(siteSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port := s.service.Addr().String(), fmt.Sprint(siteService)
	base := []string{"-g", "alice", "--secret-file", secretFile}

	// knock --wait host ssh && ssh host
	code, out, errs := s.knock("", append(base, "--wait", host, port)...)
	if code != 0 || !regexp.MustCompile(`^open after [0-9]+ ms\n$`).MatchString(out) {
		t.Fatalf("knock --wait: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	start := time.Now()
	c := s.dial(5 * time.Second)
	if c == nil {
		t.Fatalf("the connection after knock --wait did not get through (stderr %q)", errs)
	}
	t.Logf("knock --wait: %s; the user's connection took %v", strings.TrimSpace(out), time.Since(start).Round(time.Millisecond))
	c.Close()
	// --wait left one door, not more: the next connection needs a knock.
	if c := s.dial(time.Second); c != nil {
		c.Close()
		t.Fatal("a second connection got in after one knock --wait")
	}

	// ssh -o ProxyCommand='knock --proxy %h %p' host: the relayed
	// connection carries the service's greeting; stdin ends, so does it.
	code, out, errs = s.knock("SSH-2.0-test\r\n", append(base, "--proxy", host, port)...)
	if code != 0 || out != "hello\n" {
		t.Fatalf("knock --proxy: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// A wrong secret opens nothing: exit 1 and the hint, within the wait.
	code, out, errs = s.knock("wrong\n", "-g", "alice", "--secret-stdin", "--wait=1s", host, port)
	if code != 1 || out != "" || !strings.Contains(errs, "no door opened (check group, secret, port, your address)") {
		t.Fatalf("knock --wait with a wrong secret: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
