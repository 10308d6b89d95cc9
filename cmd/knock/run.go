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
	"strings"
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

	res, err := knocker.Send(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "knock: %v\n", err)
		return sendStatus(err)
	}
	if o.verbose {
		fmt.Fprintf(stderr, "knock: sent %q to %s (asks for tcp port %d)\n", res.Payload, res.Dest, res.Port)
	}

	switch {
	case o.proxy:
		return proxy(ctx, o, res, stdin, stdout, stderr)
	case o.waitSet:
		wctx, cancel := context.WithTimeout(ctx, o.wait)
		defer cancel()
		d, err := knocker.WaitOpen(wctx, res.Dest.Addr(), res.Port, 0)
		if err != nil {
			if o.verbose {
				fmt.Fprintf(stderr, "knock: %v\n", err)
			}
			fmt.Fprintln(stderr, "knock: no door opened (check group, secret, port, your address)")
			return exitNotOpen
		}
		fmt.Fprintf(stdout, "open after %d ms\n", d.Milliseconds())
		return exitOK
	case runCmd != "":
		return runProgram(ctx, knocker.ExpandRun(runCmd, o.host, o.service), o.verbose, stdin, stdout, stderr)
	}
	return exitOK
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
	case len(cfg.Secret) > 0:
		opts.Secret = cfg.Secret
	default:
		s, err := readSecret(o, stdin, stderr, opts.Group)
		if err != nil {
			return opts, "", err
		}
		opts.Secret = s
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
			fmt.Fprintln(stderr, "knock: ignoring the config's run record: --wait and --proxy use the door's connection")
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
	s, err := readLine(stdin)
	if err != nil {
		return nil, fmt.Errorf("reading the secret from stdin: %w", err)
	}
	if s == "" {
		return nil, fmt.Errorf("%w: empty secret on stdin", knocker.ErrNoSecret)
	}
	return protocol.Secret(s), nil
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

// readLine reads one line a byte at a time, so that nothing after it is
// consumed: the run command inherits the rest of stdin.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	var c [1]byte
	for b.Len() < 4096 {
		n, err := r.Read(c[:])
		if n == 1 {
			if c[0] == '\n' {
				break
			}
			b.WriteByte(c[0])
			continue
		}
		if err == io.EOF {
			if b.Len() == 0 {
				return "", io.ErrUnexpectedEOF
			}
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimSuffix(b.String(), "\r"), nil
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
