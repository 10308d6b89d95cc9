package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/doorman-project/doorman/knocker"
	"github.com/doorman-project/doorman/protocol"
	"github.com/doorman-project/doorman/version"
)

// runDelay is how long after the knock the run command starts, as in 0.81:
// the daemon needs a moment to open the door.
const runDelay = 100 * time.Millisecond

// Exit statuses.
const (
	exitOK      = 0
	exitNotOpen = 1 // door not opened, knock not sent, or run program not started
	exitUsage   = 2 // bad command line, configuration or name
)

// run is the whole program with its environment passed in, so tests can
// drive every option. It returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if len(args) > 0 && (args[0] == "keygen" || args[0] == "pubkey") {
		return keyCommand(args[0], args[1:], stdout, stderr)
	}
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "knock: %v\n", err)
		fmt.Fprintln(stderr, "Try 'knock --help'.")
		return exitUsage
	}
	if o.help {
		io.WriteString(stdout, usageText)
		return exitOK
	}
	if o.version {
		fmt.Fprintln(stdout, version.Line("knock (doorman)", version.Classic, version.Modern))
		return exitOK
	}

	p, err := settle(o, stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "knock: %v\n", err)
		return exitUsage
	}
	if p.modern != nil {
		return runModern(ctx, o, p, stdin, stdout, stderr)
	}
	opts, runCmd := p.classic, p.run

	if o.dryRun {
		k, payload, err := knocker.Build(opts)
		if err != nil {
			fmt.Fprintf(stderr, "knock: %v\n", err)
			return exitUsage
		}
		if o.verbose {
			fmt.Fprintf(stderr, "knock: would send to %s udp port %d, asking for tcp port %d\n", o.host, knockPort(opts), k.Port)
		}
		fmt.Fprintf(stdout, "%s\n%s\n", payload, hex.EncodeToString(payload))
		return exitOK
	}

	if o.waitSet && !o.proxy {
		r, err := knocker.KnockReady(ctx, opts, o.wait)
		return waitReady(o, readyReport{
			sent:   r.First.Payload != nil,
			first:  sentLine(r.First),
			opened: r.Opened,
			second: sentLine(r.Second),
			port:   r.Second.Port,
		}, err, notOpened, stdout, stderr)
	}

	res, err := knocker.Send(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "knock: %v\n", err)
		return sendStatus(err)
	}
	if o.verbose {
		fmt.Fprintln(stderr, sentLine(res))
	}

	switch {
	case o.proxy:
		return proxy(ctx, o, res.Dest.Addr(), res.Port, notOpened, stdin, stdout, stderr)
	case runCmd != "":
		return runProgram(ctx, knocker.ExpandRun(runCmd, o.host, o.service), o.verbose, stdin, stdout, stderr)
	}
	return exitOK
}

// runModern is run for a host with a server record: a modern knock
// (MODERN-12.22), with the same options as a classic one.
func runModern(ctx context.Context, o *options, p *plan, stdin io.Reader, stdout, stderr io.Writer) int {
	m := *p.modern
	if o.dryRun {
		res, err := knocker.DryRunModern(ctx, m)
		if err != nil {
			fmt.Fprintf(stderr, "knock: %v\n", err)
			return sendStatus(err)
		}
		if o.verbose {
			fmt.Fprintf(stderr, "knock: would send %s\n", describeModern(res))
		}
		fmt.Fprintln(stdout, hex.EncodeToString(res.Payload))
		return exitOK
	}

	if o.waitSet && !o.proxy {
		r, err := knocker.KnockReadyModern(ctx, m, o.wait)
		return waitReady(o, readyReport{
			sent:   r.First.Payload != nil,
			first:  modernSentLine(r.First),
			opened: r.Opened,
			second: modernSentLine(r.Second),
			port:   r.Second.Request.Port,
		}, err, notOpenedModern, stdout, stderr)
	}

	res, err := knocker.SendModern(ctx, m)
	if err != nil {
		fmt.Fprintf(stderr, "knock: %v\n", err)
		return sendStatus(err)
	}
	if o.verbose {
		fmt.Fprintln(stderr, modernSentLine(res))
	}
	switch {
	case o.proxy:
		return proxy(ctx, o, res.Dest.Addr(), res.Request.Port, notOpenedModern, stdin, stdout, stderr)
	case p.run != "":
		return runProgram(ctx, knocker.ExpandRun(p.run, o.host, o.service), o.verbose, stdin, stdout, stderr)
	}
	return exitOK
}

// The hints printed when no door opened.
const (
	notOpened       = "knock: no door opened (check group, secret, port, your address)"
	notOpenedModern = "knock: no door opened (check that the doorman has your public key (knock pubkey) in its guest list, " +
		"the server record's key, the port, your address, --source, and that your clock is right)"
)

// readyReport is what --wait did, in either protocol.
type readyReport struct {
	sent          bool   // the first knock was sent
	first, second string // what -v prints for each knock
	opened        time.Duration
	port          uint16 // the door the second knock asks for
}

// waitReady reports --wait: knock, confirm the door opened by connecting
// through it, and knock again so that a fresh door waits for the user's own
// connection (knocker.KnockReady, knocker.KnockReadyModern; err is theirs).
// stdout gets one line, "open after N ms", for scripts; stderr says what
// the user is to do next.
func waitReady(o *options, r readyReport, err error, hint string, stdout, stderr io.Writer) int {
	if o.verbose && r.sent {
		fmt.Fprintln(stderr, r.first)
	}
	switch {
	case err == nil:
	case !r.sent:
		fmt.Fprintf(stderr, "knock: %v\n", err)
		return sendStatus(err)
	case errors.Is(err, knocker.ErrNotOpened):
		if o.verbose {
			fmt.Fprintf(stderr, "knock: %v\n", err)
		}
		fmt.Fprintln(stderr, hint)
		return exitNotOpen
	default:
		fmt.Fprintf(stderr, "knock: the door opened after %d ms, but then: %v\n", r.opened.Milliseconds(), err)
		return exitNotOpen
	}
	if o.verbose {
		fmt.Fprintf(stderr, "knock: the door opened after %d ms; that connection used it up, so knocking again\n", r.opened.Milliseconds())
		fmt.Fprintln(stderr, r.second)
	}
	fmt.Fprintf(stdout, "open after %d ms\n", r.opened.Milliseconds())
	fmt.Fprintf(stderr, "knock: a fresh door waits for your connection to %s port %d; make it within the server's waitfor (10 s by default)\n",
		o.host, r.port)
	return exitOK
}

func sentLine(res knocker.Result) string {
	return fmt.Sprintf("knock: sent %q to %s (asks for tcp port %d)", res.Payload, res.Dest, res.Port)
}

func modernSentLine(res knocker.ModernResult) string {
	return "knock: sent " + describeModern(res)
}

// describeModern says what a modern knock asks for; the payload itself is
// encrypted and says nothing.
func describeModern(res knocker.ModernResult) string {
	source := "source as seen"
	if !res.Request.AsSeen() {
		source = "states source " + res.Request.Source.String()
	}
	return fmt.Sprintf("a modern knock to %s from %s (asks for tcp port %d, %s)", res.Dest, res.Local, res.Request.Port, source)
}

// plan is what settle decided: a classic or a modern knock, and the run
// command ("" for none).
type plan struct {
	classic knocker.Options
	modern  *knocker.ModernOptions // a modern knock when not nil
	run     string
}

// settle merges the command line with the configuration file. A host with
// a server record gets a modern knock with the knocker's key; any other
// host a classic one, for which settle prompts for a missing secret.
func settle(o *options, stdin io.Reader, stderr io.Writer) (*plan, error) {
	cfg, err := loadConfig(o)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "knock: warning: %s\n", w)
	}
	knockPort := o.port
	if knockPort == 0 {
		knockPort = cfg.KnockPort
	}

	p := &plan{}
	if serverKey, ok := cfg.Modern.ServerKey(o.host); ok {
		if p.modern, err = settleModern(o, cfg, serverKey, knockPort); err != nil {
			return nil, err
		}
	} else {
		if o.source != nil {
			return nil, fmt.Errorf("--source is for modern knocks, and %s has no server record in %s", o.host, configName(o))
		}
		if p.classic, err = settleClassic(o, cfg, knockPort, stdin, stderr); err != nil {
			return nil, err
		}
	}

	p.run = cfg.Run
	switch {
	case o.runSet:
		p.run = o.run
		if knocker.RunDisabled(p.run) {
			p.run = ""
		}
	case o.waitSet || o.proxy:
		if p.run != "" && o.verbose {
			fmt.Fprintln(stderr, "knock: ignoring the config's run record with --wait and --proxy")
		}
		p.run = ""
	}
	return p, nil
}

// settleClassic returns the options of a classic knock, prompting for a
// missing secret.
func settleClassic(o *options, cfg *knocker.Config, knockPort uint16, stdin io.Reader, stderr io.Writer) (knocker.Options, error) {
	opts := knocker.Options{Host: o.host, Service: o.service, Network: o.network, Tag: o.tag, KnockPort: knockPort}
	opts.Group = firstSet(o.group, cfg.Group)
	if opts.Group == "" {
		return opts, fmt.Errorf("no group: give -g or a group record in %s", configName(o))
	}
	if err := knocker.CheckGroup(opts.Group); err != nil {
		return opts, err
	}
	// Find an unknown service before asking for a secret.
	if _, err := knocker.LookupService(context.Background(), nil, o.service); err != nil {
		return opts, err
	}

	switch {
	case o.secretSet:
		opts.Secret = protocol.Secret(o.secret)
	case o.secretFile != "":
		s, err := knocker.ReadSecretFile(o.secretFile)
		if err != nil {
			return opts, fmt.Errorf("--secret-file: %w", err)
		}
		opts.Secret = s
	case o.secretStdin || len(cfg.Secret) == 0:
		s, err := readSecret(o, stdin, stderr, opts.Group)
		if err != nil {
			return opts, err
		}
		opts.Secret = s
	default:
		opts.Secret = cfg.Secret
	}
	return opts, nil
}

// settleModern returns the options of a modern knock to the doorman with
// public key server: the knocker's private key from its file, the source
// from --source or the config.
func settleModern(o *options, cfg *knocker.Config, server protocol.PublicKey, knockPort uint16) (*knocker.ModernOptions, error) {
	if len(o.classicOnly) > 0 {
		return nil, fmt.Errorf("%s: %s has a server record in %s, so it gets a modern knock, which proves your key pair and sends no group or secret",
			strings.Join(o.classicOnly, ", "), o.host, configName(o))
	}
	keyFile, err := keyPath(cfg)
	if err != nil {
		return nil, err
	}
	key, err := knocker.LoadPrivateKey(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w\nknock: %s has a server record in %s; make your key pair with: knock keygen%s\n"+
			"knock: and give the public key it prints to the doorman's administrator", err, o.host, configName(o), keygenArgs(o))
	}
	if err != nil {
		return nil, err
	}
	m := &knocker.ModernOptions{Host: o.host, Service: o.service, ServerKey: server, Key: key,
		KnockPort: knockPort, Network: o.network, Source: cfg.Modern.Source, SourceAddr: cfg.Modern.SourceAddr}
	if o.source != nil {
		m.Source, m.SourceAddr = o.source.mode, o.source.addr
	}
	return m, nil
}

// loadConfig reads -f's file, which must exist, or the default file, which
// may be missing.
func loadConfig(o *options) (*knocker.Config, error) {
	path := o.config
	if !o.configSet {
		path = knocker.DefaultConfigPath()
		if path == "" {
			return &knocker.Config{}, nil
		}
	}
	cfg, err := knocker.LoadConfig(path)
	if err != nil {
		if !o.configSet && errors.Is(err, fs.ErrNotExist) {
			return &knocker.Config{}, nil
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

func configName(o *options) string {
	if o.configSet {
		return o.config
	}
	if p := knocker.DefaultConfigPath(); p != "" {
		return p
	}
	return "the config file"
}

func firstSet(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func knockPort(o knocker.Options) uint16 {
	if o.KnockPort == 0 {
		return knocker.DefaultKnockPort
	}
	return o.KnockPort
}

// readSecret asks for the secret without echo on a terminal, or reads one
// line from a non-terminal stdin. In proxy mode stdin carries the relayed
// connection, so the prompt goes to the controlling terminal instead.
func readSecret(o *options, stdin io.Reader, stderr io.Writer, group string) (protocol.Secret, error) {
	prompt := fmt.Sprintf("Secret for group %s: ", group)
	if f, ok := stdin.(*os.File); ok && !o.proxy && term.IsTerminal(int(f.Fd())) {
		return promptTerminal(f, stderr, prompt)
	}
	if o.proxy {
		tty, err := openTerminal()
		if err != nil {
			return nil, fmt.Errorf("no secret: give -s or a secret record (no terminal to ask on: %v)", err)
		}
		defer tty.Close()
		return promptTerminal(tty, stderr, prompt)
	}
	s, err := knocker.ReadSecretLine(stdin)
	if err != nil {
		return nil, fmt.Errorf("reading the secret from stdin: %w", err)
	}
	return s, nil
}

func promptTerminal(f *os.File, stderr io.Writer, prompt string) (protocol.Secret, error) {
	fmt.Fprint(stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("reading the secret: %w", err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty secret", knocker.ErrNoSecret)
	}
	return protocol.Secret(b), nil
}

func openTerminal() (*os.File, error) {
	name := "/dev/tty"
	if runtime.GOOS == "windows" {
		name = "CONIN$"
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if !term.IsTerminal(int(f.Fd())) {
		f.Close()
		return nil, fmt.Errorf("%s is not a terminal", name)
	}
	return f, nil
}

// sendStatus maps a Send error to an exit status: names the user gave that
// do not resolve are usage errors, the network failing is not.
func sendStatus(err error) int {
	for _, e := range []error{knocker.ErrUnknownHost, knocker.ErrUnknownService, knocker.ErrBadGroup, knocker.ErrNoSecret,
		knocker.ErrNoKey, knocker.ErrNoServerKey, knocker.ErrSourceFamily} {
		if errors.Is(err, e) {
			return exitUsage
		}
	}
	return exitNotOpen
}

// proxy waits for the door to host:port and relays stdin and stdout
// through it. Nothing but relayed data goes to stdout. hint is printed when
// no door opens.
func proxy(ctx context.Context, o *options, host netip.Addr, port uint16, hint string, stdin io.Reader, stdout, stderr io.Writer) int {
	wctx, cancel := context.WithTimeout(ctx, o.wait)
	conn, d, err := knocker.DialOpen(wctx, host, port, 0)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", hint, err)
		return exitNotOpen
	}
	if o.verbose {
		fmt.Fprintf(stderr, "knock: open after %d ms, relaying\n", d.Milliseconds())
	}
	if err := knocker.Proxy(ctx, conn, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "knock: relay: %v\n", err)
		return exitNotOpen
	}
	return exitOK
}

// runProgram runs the run command through the system shell after runDelay
// and returns its exit status.
func runProgram(ctx context.Context, command string, verbose bool, stdin io.Reader, stdout, stderr io.Writer) int {
	select {
	case <-time.After(runDelay):
	case <-ctx.Done():
		return exitNotOpen
	}
	var cmd *exec.Cmd
	if runtime.GOOS == "windows" {
		cmd = exec.Command("cmd", "/C", command)
	} else {
		cmd = exec.Command("sh", "-c", command)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if verbose {
		fmt.Fprintf(stderr, "knock: running %s\n", command)
	}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	}
	fmt.Fprintf(stderr, "knock: run %q: %v\n", command, err)
	return exitNotOpen
}
