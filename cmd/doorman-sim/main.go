//go:build linux

// Command doorman-sim plays doorman's end-to-end scenarios on simulated
// networks of Linux network namespaces and prints their transcripts.
//
//	doorman-sim list
//	doorman-sim [--bin DIR] [--artifacts DIR] [--rate PPS] [--seconds S] run NAME [NAME...]
//
// Without --bin (or DOORMAN_BIN) it builds doormand and knock with `go build`
// from the module holding the working directory.
// It exits 1 if a scenario failed and 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/sim"
	"github.com/doorman-project/doorman/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks command-line mistakes, which exit with status 2.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doorman-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", os.Getenv("DOORMAN_BIN"), "directory with prebuilt doormand and knock (default: build them)")
	artifacts := fs.String("artifacts", "", "directory to keep configurations and daemon logs in")
	rate := fs.Int("rate", 200000, "flood scenario: junk datagrams per second")
	seconds := fs.Float64("seconds", 5, "flood scenario: how long to flood, in seconds")
	showVersion := fs.Bool("version", false, "print the version and the protocol its scenarios knock with, then exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: doorman-sim [--bin DIR] [--artifacts DIR] [--rate PPS] [--seconds S] list | run NAME [NAME...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Line("doorman-sim", version.Classic))
		return 0
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	switch rest[0] {
	case "list":
		for _, s := range sim.Scenarios() {
			fmt.Fprintf(stdout, "%-10s %s\n", s.Name, s.Description)
		}
		return 0
	case "run":
		// Flags after "run" and between or after the names are accepted too.
		var names []string
		for args := rest[1:]; ; {
			if err := fs.Parse(args); err != nil {
				return 2
			}
			if fs.NArg() == 0 {
				break
			}
			names = append(names, fs.Arg(0))
			args = fs.Args()[1:]
		}
		if *rate <= 0 || *seconds <= 0 || *seconds > 600 {
			fmt.Fprintln(stderr, "doorman-sim: --rate must be positive and --seconds in (0, 600]")
			return 2
		}
		cfg := sim.RunConfig{Bin: *bin, Artifacts: *artifacts, Out: stdout}
		flood := sim.FloodOptions{Rate: *rate, Duration: time.Duration(*seconds * float64(time.Second))}
		err := runScenarios(names, cfg, flood)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintln(stderr, "doorman-sim:", err)
			fs.Usage()
			return 2
		default:
			fmt.Fprintln(stderr, "doorman-sim:", err)
			return 1
		}
	default:
		fmt.Fprintf(stderr, "doorman-sim: unknown command %q\n", rest[0])
		fs.Usage()
		return 2
	}
}

// runScenarios plays the named scenarios with cfg, the flood with flood's
// load; an empty cfg.Bin means build the binaries first.
func runScenarios(names []string, cfg sim.RunConfig, flood sim.FloodOptions) error {
	out := cfg.Out
	if len(names) == 0 {
		return fmt.Errorf("%w: run needs at least one scenario name", errUsage)
	}
	var scens []sim.Scenario
	for _, name := range names {
		s, err := sim.LookupScenario(name)
		if err != nil {
			return fmt.Errorf("%w: %v (see doorman-sim list)", errUsage, err)
		}
		if s.Name == "flood" {
			s = sim.Flood(flood)
		}
		scens = append(scens, s)
	}
	if os.Geteuid() != 0 {
		return errors.New("scenarios need root (network namespaces, nftables)")
	}
	// SIGINT/SIGTERM cancel the context, which closes the network; the
	// deferred Close in RunScenario then finds it already torn down.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Bin == "" {
		dir, err := os.MkdirTemp("", "doorman-sim-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintln(out, "building doormand and knock")
		if err := doormandtest.Build(ctx, dir); err != nil {
			return err
		}
		cfg.Bin = dir
	}
	failed := 0
	for _, s := range scens {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted")
		}
		if err := sim.RunScenario(ctx, s, cfg); err != nil {
			failed++
			if !errors.Is(err, sim.ErrScenarioFailed) {
				fmt.Fprintf(out, "=== ERROR %s: %v\n", s.Name, err)
			}
		}
	}
	if ctx.Err() != nil {
		return errors.New("interrupted; the networks were torn down")
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d scenarios failed", failed, len(scens))
	}
	return nil
}
