//go:build linux

// Command doorman-conformance runs the Doorman black-box conformance suite
// against an implementation described by an adapter file. The adapter
// format, the topology and the exit statuses are documented in
// conformance/README.md.
//
//	doorman-conformance --impl conformance/adapters/doormand-nftables.toml \
//	    --client conformance/adapters/knock.toml --junit out.xml
//
// Exit status: 0 when at least one case ran and every case that ran
// passed; 1 when a case failed; 2 for a usage or setup error, and when
// nothing was tested (no case selected, every case skipped or
// unsupported); 130 when interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/doorman-project/doorman/conformance"
	"github.com/doorman-project/doorman/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doorman-conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	impl := fs.String("impl", "", "adapter file of the implementation under test (daemon or client)")
	client := fs.String("client", "", "adapter file of a client to test as well")
	runRE := fs.String("run", "", "run only cases whose ID matches this regexp")
	jsonOut := fs.Bool("json", false, "print results as JSON instead of a table")
	junit := fs.String("junit", "", "write JUnit XML results to this file")
	out := fs.String("out", "", "write per-case artifacts under this directory: daemon logs and pcaps of the server's and each client's traffic")
	coverage := fs.Bool("coverage", false, "print every requirement of the spec with the cases covering it or why none does, then exit (1 if one is unaccounted for)")
	list := fs.Bool("list", false, "list the cases without running them")
	specDir := fs.String("spec", "", "directory holding doorman.md and vectors/ (default: search upward for spec/)")
	path := fs.String("path", "", "colon-separated directories searched before $PATH for the adapters' programs")
	showVersion := fs.Bool("version", false, "print the version and the protocol its cases test, then exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: doorman-conformance --impl FILE [--client FILE] [--run REGEXP] [--json] [--junit FILE] [--out DIR] [--path DIRS]")
		fmt.Fprintln(stderr, "       doorman-conformance --coverage | --list [--impl FILE] [--client FILE]")
		fmt.Fprintln(stderr, "")
		fmt.Fprintln(stderr, "Runs the Doorman black-box conformance suite against the implementation an adapter")
		fmt.Fprintln(stderr, "file describes. Adapter reference, topology and examples: conformance/README.md.")
		fmt.Fprintln(stderr, "Needs root (it creates network namespaces). Relative paths are taken from the")
		fmt.Fprintln(stderr, "directory it is run in.")
		fmt.Fprintln(stderr, "")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "")
		fmt.Fprintln(stderr, "Exit status: 0 all cases that ran passed (at least one ran); 1 a case failed;")
		fmt.Fprintln(stderr, "2 usage or setup error, or nothing tested (no case selected, all skipped or")
		fmt.Fprintln(stderr, "unsupported); 130 interrupted.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Line("doorman-conformance", version.Classic, version.Modern))
		return 0
	}
	if *coverage {
		dir := *specDir
		if dir == "" {
			var err error
			if dir, err = conformance.FindSpecDir("."); err != nil {
				fmt.Fprintln(stderr, "doorman-conformance:", err)
				return 2
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, "doorman.md"))
		if err != nil {
			fmt.Fprintln(stderr, "doorman-conformance:", err)
			return 2
		}
		if err := conformance.WriteCoverage(stdout, string(b)); err != nil {
			fmt.Fprintln(stderr, "doorman-conformance:", err)
			return 1
		}
		return 0
	}
	var o conformance.Options
	if *runRE != "" {
		re, err := regexp.Compile(*runRE)
		if err != nil {
			fmt.Fprintln(stderr, "doorman-conformance: --run:", err)
			return 2
		}
		o.Filter = re
	}
	var search []string
	if *path != "" {
		for _, d := range strings.Split(*path, ":") {
			// Commands run in per-case work directories: a relative
			// directory must mean the one it names here.
			abs, err := filepath.Abs(d)
			if err != nil {
				fmt.Fprintln(stderr, "doorman-conformance: --path:", err)
				return 2
			}
			search = append(search, abs)
		}
	}
	for _, p := range []*string{out, specDir} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				fmt.Fprintln(stderr, "doorman-conformance:", err)
				return 2
			}
			*p = abs
		}
	}
	load := func(p string) (*conformance.Adapter, error) {
		a, err := conformance.LoadAdapter(p)
		if err != nil {
			return nil, err
		}
		a.SearchPath = search
		return a, nil
	}
	o.SpecDir, o.OutDir = *specDir, *out
	if *impl == "" && *client == "" && !*list {
		fs.Usage()
		return 2
	}
	if *impl != "" {
		a, err := load(*impl)
		if err != nil {
			fmt.Fprintln(stderr, "doorman-conformance:", err)
			return 2
		}
		o.Impl = a
	}
	if *client != "" {
		a, err := load(*client)
		if err != nil {
			fmt.Fprintln(stderr, "doorman-conformance:", err)
			return 2
		}
		o.Client = a
	}
	if *list {
		cases := conformance.Cases()
		if o.Impl != nil || o.Client != nil {
			cases = o.Selected()
		}
		for _, c := range cases {
			fmt.Fprintf(stdout, "%-36s %-14s %-8s %-7s %s\n", c.ID, c.Requirement, c.Level, c.Target, c.Description)
		}
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if !*jsonOut {
		o.OnResult = func(r conformance.Result) {
			fmt.Fprintf(stderr, "%-11s %s\n", strings.ToUpper(string(r.Verdict)), r.ID)
		}
	}
	results, err := conformance.RunSuite(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "doorman-conformance:", err)
		return 2
	}
	if *jsonOut {
		if err := conformance.WriteJSON(stdout, results); err != nil {
			fmt.Fprintln(stderr, "doorman-conformance:", err)
			return 2
		}
	} else {
		conformance.WriteTable(stdout, results)
	}
	if *junit != "" {
		f, err := os.Create(*junit)
		if err == nil {
			err = conformance.WriteJUnit(f, results)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "doorman-conformance: --junit:", err)
			return 2
		}
	}
	if ctx.Err() != nil {
		return 130
	}
	sum := conformance.Summarize(results)
	if p := sum.Problem(); p != "" {
		fmt.Fprintln(stderr, "doorman-conformance:", p)
		if sum.Fail > 0 {
			return 1
		}
		return 2
	}
	return 0
}
