package main

import (
	"bufio"
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

	"github.com/doorman-project/doorman/sim"
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
	cli, srv *sim.Host
	bin, dir string
	home     string // the client's HOME, with no .knockcf
	service  netip.AddrPort
	log      string
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

func newDoormanSite(t *testing.T) *doormanSite {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and nftables")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (make deps installs it)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	n, err := sim.New(ctx, sim.Options{Prefix: "dmknock"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	s := &doormanSite{t: t, bin: t.TempDir(), dir: t.TempDir(), home: t.TempDir()}
	if s.cli, err = n.AddHost("cli"); err != nil {
		t.Fatal(err)
	}
	if s.srv, err = n.AddHost("srv"); err != nil {
		t.Fatal(err)
	}
	link, err := n.Link(s.cli, s.srv, sim.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.BuildDoorman(ctx, "../..", s.bin); err != nil {
		t.Fatal(err)
	}
	s.service = netip.AddrPortFrom(link.B.Addr4, siteService)

	rules := filepath.Join(s.dir, "ruleset.nft")
	cf := fmt.Sprintf("interface %s\nport 1001\nwaitfor 3\nconnection-delay-1 500000\nconnection-delay-2 1\n"+
		"guestlist %[2]s/guests\nhash-archive %[2]s/replay\npidfile %[2]s/pid\nloglevel debug\nstats-interval 0\n"+
		"firewall nftables\n", link.B.Name, s.dir)
	guests := fmt.Sprintf("alice %s %d %s\n", siteSecret, siteService, link.A.Prefix4)
	for name, body := range map[string]string{"ruleset.nft": sitePolicyDrop, "doormand.cf": cf, "guests": guests} {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := s.srv.Command(ctx, "nft", "-f", rules).CombinedOutput(); err != nil {
		t.Fatalf("server ruleset: %v: %s", err, out)
	}
	s.serve(ctx)

	s.log = filepath.Join(s.dir, "doormand.log")
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	d := s.srv.Command(ctx, filepath.Join(s.bin, "doormand"), "-D", "-f", filepath.Join(s.dir, "doormand.cf"))
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { d.Wait(); close(exited) }()
	t.Cleanup(func() {
		d.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			d.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			t.Logf("doormand log:\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.readLog(), "doormand started") {
		if time.Now().After(deadline) {
			t.Fatalf("doormand did not start:\n%s", s.readLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the firewall is set up right after the start record
	if c := s.dial(time.Second); c != nil {
		c.Close()
		t.Fatal("the service is reachable before any knock")
	}
	return s
}

func (s *doormanSite) readLog() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// serve runs the greeting service: "hello\n", then it reads until the
// client closes.
func (s *doormanSite) serve(ctx context.Context) {
	var l net.Listener
	if err := s.srv.Do(func() (err error) {
		l, err = net.Listen("tcp4", s.service.String())
		return err
	}); err != nil {
		s.t.Fatal(err)
	}
	context.AfterFunc(ctx, func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("hello\n"))
				buf := make([]byte, 64)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// dial is the user's own connection from the client, made once the way ssh
// makes it (the kernel retransmits a lost SYN); nil unless it connects and
// gets the greeting within timeout.
func (s *doormanSite) dial(timeout time.Duration) net.Conn {
	var c net.Conn
	s.cli.Do(func() error {
		var err error
		if c, err = net.DialTimeout("tcp4", s.service.String(), timeout); err != nil {
			c = nil
			return err
		}
		c.SetReadDeadline(time.Now().Add(timeout))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hello\n" {
			c.Close()
			c = nil
		}
		return nil
	})
	return c
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
