package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"time"

	"golang.org/x/term"

	"github.com/doorman-project/doorman/knocker"
	"github.com/doorman-project/doorman/protocol"
)

// version is the program version; release builds set it with
// -ldflags "-X main.version=...".
var version = "devel"

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
		fmt.Fprintf(stdout, "knock (doorman) %s\nprotocols: classic (Doorman 0.81)\n", programVersion())
		return exitOK
	}

	opts, runCmd, err := settle(o, stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "knock: %v\n", err)
		return exitUsage
	}

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
		return waitReady(ctx, o, opts, stdout, stderr)
	}

	res, err := knocker.Send(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "knock: %v\n", err)
		return sendStatus(err)
	}
	if o.verbose {
		printSent(stderr, res)
	}

	switch {
	case o.proxy:
		return proxy(ctx, o, res, stdin, stdout, stderr)
	case runCmd != "":
		return runProgram(ctx, knocker.ExpandRun(runCmd, o.host, o.service), o.verbose, stdin, stdout, stderr)
	}
	return exitOK
}

// notOpened is the hint printed when no door opened.
const notOpened = "knock: no door opened (check group, secret, port, your address)"

// waitReady is --wait: knock, confirm the door opened by connecting
// through it, and knock again so that a fresh door waits for the user's own
// connection (knocker.KnockReady). stdout gets one line, "open after N ms",
// for scripts; stderr says what the user is to do next.
func waitReady(ctx context.Context, o *options, opts knocker.Options, stdout, stderr io.Writer) int {
	r, err := knocker.KnockReady(ctx, opts, o.wait)
	if o.verbose && r.First.Payload != nil {
		printSent(stderr, r.First)
	}
	switch {
	case err == nil:
	case r.First.Payload == nil: // the first knock was not sent
		fmt.Fprintf(stderr, "knock: %v\n", err)
		return sendStatus(err)
	case errors.Is(err, knocker.ErrNotOpened):
		if o.verbose {
			fmt.Fprintf(stderr, "knock: %v\n", err)
		}
		fmt.Fprintln(stderr, notOpened)
		return exitNotOpen
	default:
		fmt.Fprintf(stderr, "knock: the door opened after %d ms, but then: %v\n", r.Opened.Milliseconds(), err)
		return exitNotOpen
	}
	if o.verbose {
		fmt.Fprintf(stderr, "knock: the door opened after %d ms; that connection used it up, so knocking again\n", r.Opened.Milliseconds())
		printSent(stderr, r.Second)
	}
	fmt.Fprintf(stdout, "open after %d ms\n", r.Opened.Milliseconds())
	fmt.Fprintf(stderr, "knock: a fresh door waits for your connection to %s port %d; make it within the server's waitfor (10 s by default)\n",
		o.host, r.Second.Port)
	return exitOK
}

func printSent(w io.Writer, res knocker.Result) {
	fmt.Fprintf(w, "knock: sent %q to %s (asks for tcp port %d)\n", res.Payload, res.Dest, res.Port)
}

// settle merges the command line with the configuration file and prompts
// for a missing secret. It returns the knock options and the run command
// ("" for none).
func settle(o *options, stdin io.Reader, stderr io.Writer) (knocker.Options, string, error) {
	opts := knocker.Options{Host: o.host, Service: o.service, Network: o.network, Tag: o.tag}
	cfg, err := loadConfig(o)
	if err != nil {
		return opts, "", err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "knock: warning: %s\n", w)
	}

	opts.Group = firstSet(o.group, cfg.Group)
	if opts.Group == "" {
		return opts, "", fmt.Errorf("no group: give -g or a group record in %s", configName(o))
	}
	if err := knocker.CheckGroup(opts.Group); err != nil {
		return opts, "", err
	}
	// Find an unknown service before asking for a secret.
	if _, err := knocker.LookupService(context.Background(), nil, o.service); err != nil {
		return opts, "", err
	}
	opts.KnockPort = o.port
	if opts.KnockPort == 0 {
		opts.KnockPort = cfg.KnockPort
	}

	switch {
	case o.secretSet:
		opts.Secret = protocol.Secret(o.secret)
	case o.secretFile != "":
		s, err := knocker.ReadSecretFile(o.secretFile)
		if err != nil {
			return opts, "", fmt.Errorf("--secret-file: %w", err)
		}
		opts.Secret = s
	case o.secretStdin || len(cfg.Secret) == 0:
		s, err := readSecret(o, stdin, stderr, opts.Group)
		if err != nil {
			return opts, "", err
		}
		opts.Secret = s
	default:
		opts.Secret = cfg.Secret
	}

	runCmd := cfg.Run
	switch {
	case o.runSet:
		runCmd = o.run
		if knocker.RunDisabled(runCmd) {
			runCmd = ""
		}
	case o.waitSet || o.proxy:
		if runCmd != "" && o.verbose {
			fmt.Fprintln(stderr, "knock: ignoring the config's run record with --wait and --proxy")
		}
		runCmd = ""
	}
	return opts, runCmd, nil
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
	for _, e := range []error{knocker.ErrUnknownHost, knocker.ErrUnknownService, knocker.ErrBadGroup, knocker.ErrNoSecret} {
		if errors.Is(err, e) {
			return exitUsage
		}
	}
	return exitNotOpen
}

// proxy waits for the door and relays stdin and stdout through it. Nothing
// but relayed data goes to stdout.
func proxy(ctx context.Context, o *options, res knocker.Result, stdin io.Reader, stdout, stderr io.Writer) int {
	wctx, cancel := context.WithTimeout(ctx, o.wait)
	conn, d, err := knocker.DialOpen(wctx, res.Dest.Addr(), res.Port, 0)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "knock: no door opened (check group, secret, port, your address): %v\n", err)
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

func programVersion() string {
	if version != "devel" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}
