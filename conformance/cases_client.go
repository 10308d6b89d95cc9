//go:build linux

package conformance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// KnockData is what a client adapter's templates are rendered from.
type KnockData struct {
	Host      string // the doorman's address
	Port      string // the TCP port or service to open
	Group     string
	Secret    string
	KnockPort int
	Tag       uint32 // dry-run only
	WorkDir   string // where the adapter's files are rendered

	// The modern protocol (modern_knock, keygen, pubkey): ServerKey is
	// the doorman's public key for a server record ("" for a classic
	// knock), KeyFile the knocker's private key file, Source the source
	// record to write ("" leaves the default).
	ServerKey string
	KeyFile   string
	Source    string

	key     *keyPair    // written to KeyFile before the command runs
	keyMode os.FileMode // its mode; 0 = 0600
}

// Cases for the knocker (sections 2, 3 and 11).
func clientCases() []*Case {
	return []*Case{
		{ID: "2.1/client-payload-format", Requirement: "CLASSIC-2.1/1", Level: "MUST", Target: TargetClient,
			Also:        []string{"CLASSIC-2.1", "CLASSIC-2.2/1", "CLASSIC-2.5", "CLASSIC-11.1"},
			Description: "the client sends exactly one datagram: four fields, single spaces, no terminator, lower-case hex, a correct hmac",
			Run:         runClientFormat},
		{ID: "3.3/client-tag-freshness", Requirement: "CLASSIC-3.3/1", Level: "MUST", Target: TargetClient,
			Description: "200 knocks carry 200 different tags", Timeout: 3 * time.Minute, Run: runClientTags},
		{ID: "3.1/client-mac-vectors", Requirement: "CLASSIC-3.1", Level: "MUST", Target: TargetClient,
			Description: "the client's dry run reproduces every 'valid' vector of classic.json byte for byte",
			Run:         runClientVectors},
		{ID: "11.2/client-service-name", Requirement: "CLASSIC-11.2", Level: "MUST", Target: TargetClient,
			Description: "knocking for service 'ssh' sends port 22",
			Run: func(e *Env) error {
				p, err := e.clientKnockOnce("ssh")
				if err != nil {
					return err
				}
				if !strings.HasPrefix(p, "22 ") {
					return mismatch("port field 22", "payload %q", p)
				}
				return nil
			}},
	}
}

var classicRE = regexp.MustCompile(`^([1-9][0-9]{0,4}) (\S{1,32}) ([0-9]{10}) ([0-9a-f]{32})$`)

// runClient runs the adapter's knock command in the first client's
// namespace.
func (e *Env) runClient(argvT []string, d KnockData, ns string) (string, error) {
	a := e.Client
	dir, err := os.MkdirTemp(e.WorkDir, "knock-")
	if err != nil {
		return "", setupErr(err)
	}
	defer os.RemoveAll(dir)
	d.WorkDir = dir
	if d.KeyFile == "" {
		d.KeyFile = filepath.Join(dir, "knock.key")
	}
	if d.key != nil {
		mode := d.keyMode
		if mode == 0 {
			mode = 0o600
		}
		if err := os.WriteFile(d.KeyFile, []byte(keyText(d.key.priv)+"\n"), mode); err != nil {
			return "", setupErr(err)
		}
		if err := os.Chmod(d.KeyFile, mode); err != nil {
			return "", setupErr(err)
		}
	}
	if err := a.WriteFiles(dir, d); err != nil {
		return "", err
	}
	argv, err := a.RenderArgv("knock", argvT, d)
	if err != nil {
		return "", err
	}
	if err := checkProgram(argv); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	if ns != "" {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	} else {
		cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("client %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (e *Env) knockData(service string) KnockData {
	return KnockData{Host: e.Topo.Server.Addr.String(), Port: service, Group: "alice", Secret: secretA, KnockPort: knockPort}
}

// clientKnockOnce runs one knock against a UDP listener on the server and
// returns the payload; it fails if not exactly one datagram arrives.
func (e *Env) clientKnockOnce(service string) (string, error) {
	ln, err := udpListen(e.Topo.Server, knockPort)
	if err != nil {
		return "", err
	}
	defer ln.Close()
	if _, err := e.runClient(e.Client.Knock, e.knockData(service), e.Topo.Client.NS); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	_ = ln.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := ln.ReadFromUDP(buf)
	if err != nil {
		return "", mismatch("one knock datagram", "none within 3 s (%v)", err)
	}
	p := string(buf[:n])
	_ = ln.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n2, _, err := ln.ReadFromUDP(buf); err == nil {
		return p, mismatch("exactly one datagram per knock (CLASSIC-11.1)", "a second one: %q", buf[:n2])
	}
	return p, nil
}

func runClientFormat(e *Env) error {
	p, err := e.clientKnockOnce(strconv.Itoa(portA))
	if err != nil {
		return err
	}
	m := classicRE.FindStringSubmatch(p)
	if m == nil {
		return mismatch("payload matching "+classicRE.String(), "%q", p)
	}
	if m[1] != strconv.Itoa(portA) || m[2] != "alice" {
		return mismatch(fmt.Sprintf("port %d group alice", portA), "%q", p)
	}
	tag, _ := strconv.ParseUint(m[3], 10, 64)
	if tag > 0xffffffff {
		return mismatch("tag at most 4294967295", "%s", m[3])
	}
	if want := macHex(m[1]+" "+m[2]+" "+m[3], secretA); m[4] != want {
		return mismatch("hmac "+want, "%s", m[4])
	}
	return nil
}

func runClientTags(e *Env) error {
	ln, err := udpListen(e.Topo.Server, knockPort)
	if err != nil {
		return err
	}
	defer ln.Close()
	const n = 200
	seen := map[string]int{}
	got := make(chan string, n+10)
	go func() {
		buf := make([]byte, 2048)
		for {
			_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, _, err := ln.ReadFromUDP(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:k])
		}
	}()
	for i := 0; i < n; i++ {
		if _, err := e.runClient(e.Client.Knock, e.knockData(strconv.Itoa(portA)), e.Topo.Client.NS); err != nil {
			return err
		}
	}
	count := 0
	for p := range got {
		m := classicRE.FindStringSubmatch(p)
		if m == nil {
			return mismatch("well-formed payloads", "%q", p)
		}
		seen[m[3]]++
		count++
		if count == n {
			break
		}
	}
	if count < n {
		return mismatch(fmt.Sprintf("%d datagrams", n), "%d", count)
	}
	if len(seen) != n {
		for t, c := range seen {
			if c > 1 {
				return mismatch(fmt.Sprintf("%d different tags", n), "%d different; tag %s sent %d times", len(seen), t, c)
			}
		}
	}
	return nil
}

func runClientVectors(e *Env) error {
	if len(e.Client.DryRun) == 0 {
		return Skipf("the client adapter has no dry_run command")
	}
	if e.Vectors == nil {
		return Skipf("spec/vectors/classic.json not found")
	}
	var bad []string
	for _, v := range e.Vectors.Valid {
		d := KnockData{Host: "198.18.0.1", Port: strconv.Itoa(v.Port), Group: v.Group, Secret: v.Secret, KnockPort: knockPort, Tag: v.Tag}
		out, err := e.runClient(e.Client.DryRun, d, "")
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", v.Name, err))
			continue
		}
		first, _, _ := strings.Cut(out, "\n")
		if strings.TrimRight(first, "\r") != v.Payload {
			bad = append(bad, fmt.Sprintf("%s: %q", v.Name, first))
		}
	}
	if len(bad) > 0 {
		return mismatch("every valid vector's payload", "%s", strings.Join(bad, "; "))
	}
	return nil
}
