// Command doormand is the doorman daemon: it keeps TCP ports closed and
// opens one narrow door for each valid knock. See spec/doorman.md and
// README.md.
//
//	doormand [-h] [-v] [-D] [-X] [-p pidfile] [-f config-file] [--events FILE]
//	doormand [-D] [-f config-file] --check | --import-archive FILE | --prune-replay | --repair-replay
//	doormand keygen [-D] [-f config-file] [FILE]
//	doormand pubkey [-D] [-f config-file]
//
// Run "doormand --help" for what each option does.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/doorman-project/doorman/daemon"
	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/daemon/service"
	"github.com/doorman-project/doorman/version"
	"github.com/spf13/pflag"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// usage is printed by -h and after a command-line mistake.
const usage = `usage: doormand [-h] [-v] [-D] [-X] [-p pidfile] [-f config-file]
       doormand [-D] [-f config-file] --check | --import-archive FILE | --prune-replay | --repair-replay
       doormand keygen [-D] [-f config-file] [FILE]
       doormand pubkey [-D] [-f config-file]

  -h, --help            show this help
  -v, --version         print the version and the protocols spoken
  -D, --debug           log to stderr at debug level and skip the ownership
                        checks of the files (doormand always stays in the
                        foreground: run it under systemd)
  -X, --hexdump         hex-dump each captured frame's first 128 bytes with its
                        link type and the link-header length in use
  -p, --pidfile FILE    pid file (overrides the configuration's pidfile)
  -f, --config FILE     configuration (default ` + config.DefaultConfigPath + `)
      --check           check the configuration, the guest list and the private
                        key (needed if the list has modern guests), then exit
      --events FILE     append the event stream (one JSON object a line: ready,
                        knock, door, firewall, reload, counters, stopped) to
                        FILE for tools and tests; - writes it to stdout
      --import-archive FILE
                        merge a Doorman 0.81 hash archive into the replay store
      --prune-replay    drop replay digests of groups whose secret changed or
                        that were removed (with the daemon stopped)
      --repair-replay   rewrite a replay store (and the stamp store of modern
                        knocks beside it) that doormand refuses as damaged,
                        keeping every record that checks and the original as
                        FILE.damaged (with the daemon stopped)

Modern knocks (key pairs instead of secrets) need the doorman's key pair:
  keygen [FILE]         write a new private key to FILE (default: the
                        configuration's private-key), never over an existing
                        file, and print its public key for the knockers
  pubkey                print the public key of the configured private key

Signals: HUP reloads, USR1 logs counters, TERM/INT/QUIT close every door and exit.
`

func run(args []string, stdout, stderr io.Writer) int {
	if isKeyCommand(args) {
		return keyCommand(args[0], args[1:], stdout, stderr)
	}
	fs := pflag.NewFlagSet("doormand", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	var (
		help, showVersion, debug, hexdump, check, prune, repair bool
		pidfile, cfgPath, importArchive, events                 string
	)
	fs.BoolVarP(&help, "help", "h", false, "show this help")
	fs.BoolVarP(&showVersion, "version", "v", false, "print the version and exit")
	fs.BoolVarP(&debug, "debug", "D", false, "debug: log to stderr at debug level, skip file ownership checks")
	fs.BoolVarP(&hexdump, "hexdump", "X", false, "hex-dump every captured frame with its link type and header length")
	fs.StringVarP(&pidfile, "pidfile", "p", "", "pid file (overrides the config's pidfile)")
	fs.StringVarP(&cfgPath, "config", "f", config.DefaultConfigPath, "configuration file")
	fs.BoolVar(&check, "check", false, "check the configuration, guest list and private key, then exit")
	fs.StringVar(&events, "events", "", "append the event stream (JSON lines) to `file`; - = stdout")
	fs.StringVar(&importArchive, "import-archive", "", "merge a Doorman 0.81 hash-archive `file` into the replay store, then exit")
	fs.BoolVar(&prune, "prune-replay", false, "drop replay digests of groups whose secret changed or that were removed, then exit (daemon stopped)")
	fs.BoolVar(&repair, "repair-replay", false, "rewrite a damaged replay store keeping every record that checks, then exit (daemon stopped)")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "doormand: %v\n", err)
		fs.Usage()
		return 2
	}
	if help {
		fs.SetOutput(stdout)
		fs.Usage()
		return 0
	}
	if showVersion {
		fmt.Fprintln(stdout, version.Line("doormand", version.Classic, version.Modern))
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "doormand: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	o := service.Options{ConfigPath: cfgPath, Debug: debug, PidFile: pidfile, Stderr: stderr, Stdout: stdout, Events: events, Check: check}
	if hexdump {
		o.HexDump = stdout
	}
	svc, guests, err := service.Load(o)
	if check {
		return checkReport(svc, guests, err, cfgPath, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "doormand: %v\n", err)
		return 1
	}
	defer svc.Close()
	cfg := svc.Config()

	switch {
	case importArchive != "" || prune || repair:
		// The offline tools write the store: only where nobody else can
		// replace it, and only while no doormand holds it (replay.ErrLocked).
		if err := config.CheckStatePath(cfg.HashArchive); err != nil {
			fmt.Fprintf(stderr, "doormand: hash-archive: %v\n", err)
			return 1
		}
	}
	switch {
	case importArchive != "":
		st, err := replay.Open(cfg.HashArchive, replay.Options{Capacity: cfg.HashArchiveSize})
		if err != nil {
			fmt.Fprintf(stderr, "doormand: %v\n", err)
			return 1
		}
		n, err := st.Import(importArchive)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintf(stderr, "doormand: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "imported %d digests from %s into %s\n", n, importArchive, cfg.HashArchive)
		return 0
	case prune:
		n, err := replay.Prune(cfg.HashArchive, guests.Fingerprints(), replay.Options{Capacity: cfg.HashArchiveSize})
		if err != nil {
			fmt.Fprintf(stderr, "doormand: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "pruned %d digests from %s\n", n, cfg.HashArchive)
		return 0
	case repair:
		// Each store that exists; the replay store's error if neither does.
		var paths []string
		for _, p := range []string{cfg.HashArchive, cfg.StampFile()} {
			if _, err := os.Lstat(p); err == nil {
				paths = append(paths, p)
			}
		}
		if len(paths) == 0 {
			paths = []string{cfg.HashArchive}
		}
		for _, path := range paths {
			if err := repairStore(path, cfg.HashArchiveSize, stdout); err != nil {
				fmt.Fprintf(stderr, "doormand: %v\n", err)
				return 1
			}
		}
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer stop()
	if err := svc.Run(ctx, guests); err != nil && !errors.Is(err, context.Canceled) {
		svc.Logger().Error("doormand stopped", "err", err)
		fmt.Fprintf(stderr, "doormand: %v\n", err)
		return 1
	}
	return 0
}

// Exit statuses of --check.
const (
	checkOK       = 0 // nothing needs attention
	checkErrors   = 1 // doormand would not start, or a reload would be refused
	checkWarnings = 3 // doormand would start, but look at the warnings
)

// checkReport prints what --check found on stdout, one finding a line
// ("where: error|warning: what"), then a summary, and returns the exit
// status: checkOK, checkErrors or checkWarnings.
func checkReport(svc *service.Service, guests *daemon.Guests, loadErr error, cfgPath string, stdout io.Writer) int {
	var fs []service.Finding
	if loadErr != nil {
		fs = loadFindings(loadErr, cfgPath)
	} else {
		defer svc.Close()
		fs = svc.Findings()
	}
	errs := 0
	for _, f := range fs {
		fmt.Fprintln(stdout, f)
		if f.Severity == service.Fatal {
			errs++
		}
	}
	switch {
	case errs > 0:
		fmt.Fprintf(stdout, "%s: %d error(s), %d warning(s): doormand would not start with these files\n", cfgPath, errs, len(fs)-errs)
		return checkErrors
	case len(fs) > 0:
		fmt.Fprintf(stdout, "%s: %d warning(s): doormand would start (%d guests, %d modern); look at the warnings\n",
			cfgPath, len(fs), guests.Len(), guests.Modern())
		return checkWarnings
	}
	fmt.Fprintf(stdout, "%s: ok (%d guests, %d modern)\n", cfgPath, guests.Len(), guests.Modern())
	return checkOK
}

// loadFindings turns what Load refused into findings: each error of the
// files on its own line with its file:line.
func loadFindings(err error, cfgPath string) []service.Finding {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var fs []service.Finding
		for _, e := range j.Unwrap() {
			fs = append(fs, loadFindings(e, cfgPath)...)
		}
		return fs
	}
	var ce *config.Error
	if errors.As(err, &ce) && ce.Error() == err.Error() {
		where := ce.File
		if ce.Line > 0 {
			where = fmt.Sprintf("%s:%d", ce.File, ce.Line)
		}
		return []service.Finding{{Severity: service.Fatal, Where: where, Msg: strings.TrimPrefix(ce.Error(), where+": ")}}
	}
	return []service.Finding{{Severity: service.Fatal, Where: cfgPath, Msg: err.Error()}}
}

// repairStore runs --repair-replay on one store file (the replay store or
// the stamp store) and says what it did.
func repairStore(path string, capacity int, stdout io.Writer) error {
	if err := config.CheckStatePath(path); err != nil {
		return err
	}
	rep, err := replay.Repair(path, replay.Options{Capacity: capacity})
	if err != nil {
		return err
	}
	switch {
	case !rep.Rewritten && rep.DamagedBytes == 0:
		fmt.Fprintf(stdout, "%s: %d records, nothing to repair\n", path, rep.Records)
	case rep.DamagedBytes == 0:
		fmt.Fprintf(stdout, "rewrote %s: %d records, nothing dropped\n", path, rep.Records)
	default:
		fmt.Fprintf(stdout, "repaired %s: kept %d records, dropped %d bytes in %d places in which no record checks",
			path, rep.Records, rep.DamagedBytes, rep.Places)
		if rep.Backup != "" {
			fmt.Fprintf(stdout, "; original kept as %s", rep.Backup)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}
