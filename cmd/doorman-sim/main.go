//go:build linux

// Command doorman-sim plays doorman's end-to-end scenarios on simulated
// networks of Linux network namespaces, prints their transcripts and a
// table of verdicts, and writes JUnit and JSON results for CI servers.
//
//	doorman-sim list [--tag TAG]
//	doorman-sim run [NAME...] [--tag TAG]... [--impl ADAPTER]... [--junit FILE] [--json FILE]
//	    [--artifacts DIR] [--bin DIR] [--rate PPS] [--seconds S]
//
// Without --impl the scenarios play against the doormand in --bin (or
// DOORMAN_BIN); without either, it builds doormand and knock with `go
// build` from the module holding the working directory. Each --impl is a
// conformance adapter file (conformance/README.md); several make a matrix.
//
// Exit status: 0 when every scenario that was played passed and every
// implementation passed at least one; 1 when a scenario failed; 2 for a
// usage error and when nothing was tested (no scenario selected, or an
// implementation with every scenario skipped, unsupported or not
// installed); 130 when interrupted. README.md, "doorman-sim in CI", has
// the JSON schema.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/doorman-project/doorman/conformance/adapter"
	"github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/sim"
	"github.com/doorman-project/doorman/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitPass        = 0
	exitFail        = 1
	exitUsage       = 2 // also: nothing was tested
	exitInterrupted = 130
)

// errUsage marks command-line mistakes, which exit with status 2.
var errUsage = errors.New("usage")

// options are the parsed command line.
type options struct {
	bin       string
	artifacts string
	tags      []string
	impls     []string
	junit     string
	json      string
	rate      int
	seconds   float64
	version   bool
	flood     sim.FloodOptions
	names     []string
}

// newFlags returns doorman-sim's flag set, filling o.
func newFlags(o *options, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("doorman-sim", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.StringVar(&o.bin, "bin", os.Getenv("DOORMAN_BIN"), "directory with prebuilt doormand and knock, also searched first for the --impl adapters' programs (default: $DOORMAN_BIN, else build them)")
	fs.StringSliceVar(&o.tags, "tag", nil, "select the scenarios carrying TAG (repeat it or separate tags with commas); with names, both")
	fs.StringArrayVar(&o.impls, "impl", nil, "play against the implementation this conformance adapter file describes instead of the built doormand; repeat it for a matrix")
	fs.StringVar(&o.junit, "junit", "", "write JUnit XML results to `FILE`")
	fs.StringVar(&o.json, "json", "", "write JSON results to `FILE` (schema in README.md, \"doorman-sim in CI\")")
	fs.StringVar(&o.artifacts, "artifacts", "", "keep every scenario's configuration, daemon log, events and pcaps under `DIR`/IMPL/SCENARIO (default: keep only failed scenarios', under ./doorman-sim-artifacts/RUN)")
	fs.IntVar(&o.rate, "rate", 200000, "flood scenarios: junk datagrams per second")
	fs.Float64Var(&o.seconds, "seconds", 5, "flood scenarios: how long to flood, in seconds")
	fs.BoolVar(&o.version, "version", false, "print the version and the protocol its scenarios knock with, then exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: doorman-sim list [--tag TAG]")
		fmt.Fprintln(stderr, "       doorman-sim run [NAME...] [--tag TAG]... [--impl ADAPTER]... [--junit FILE] [--json FILE] [--artifacts DIR] [--bin DIR]")
		fmt.Fprintln(stderr, "")
		fmt.Fprintln(stderr, "Plays doorman's end-to-end scenarios in network namespaces (needs root). Tags:")
		fmt.Fprintln(stderr, "quick (every CI run, under a minute), network, load, linktypes, modern.")
		fmt.Fprintln(stderr, "")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "")
		fmt.Fprintln(stderr, "Exit status: 0 every scenario played passed; 1 a scenario failed; 2 usage error,")
		fmt.Fprintln(stderr, "or nothing tested (no scenario selected; an implementation not installed or with")
		fmt.Fprintln(stderr, "every scenario skipped or unsupported); 130 interrupted.")
	}
	return fs
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlags(&o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitPass
		}
		fmt.Fprintln(stderr, "doorman-sim:", err)
		fs.Usage()
		return exitUsage
	}
	if o.version {
		fmt.Fprintln(stdout, version.Line("doorman-sim", version.Classic, version.Modern))
		return exitPass
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return exitUsage
	}
	usage := func(err error) int {
		fmt.Fprintln(stderr, "doorman-sim:", err)
		fs.Usage()
		return exitUsage
	}
	o.names = rest[1:]
	switch rest[0] {
	case "list":
		if len(o.names) > 0 {
			return usage(fmt.Errorf("list takes no names (select with --tag)"))
		}
		list(stdout, selectByTags(sim.Scenarios(), o.tags))
		return exitPass
	case "run":
		if o.rate <= 0 || o.seconds <= 0 || o.seconds > 600 {
			return usage(errors.New("--rate must be positive and --seconds in (0, 600]"))
		}
		o.flood = sim.FloodOptions{Rate: o.rate, Duration: time.Duration(o.seconds * float64(time.Second))}
		code, err := runScenarios(o, stdout)
		switch {
		case errors.Is(err, errUsage):
			return usage(err)
		case err != nil:
			fmt.Fprintln(stderr, "doorman-sim:", err)
		}
		return code
	default:
		return usage(fmt.Errorf("unknown command %q", rest[0]))
	}
}

// list prints each scenario with its tags and description.
func list(w io.Writer, scens []sim.Scenario) {
	for _, s := range scens {
		fmt.Fprintf(w, "%-10s %-16s %s\n", s.Name, strings.Join(s.Tags, ","), s.Description)
	}
}

// selectByTags returns the scenarios carrying any of tags; all of them
// without tags.
func selectByTags(all []sim.Scenario, tags []string) []sim.Scenario {
	if len(tags) == 0 {
		return all
	}
	var out []sim.Scenario
	for _, s := range all {
		if slices.ContainsFunc(tags, s.HasTag) {
			out = append(out, s)
		}
	}
	return out
}

// selectScenarios returns the named scenarios and those carrying a tag,
// each once, in the built-in order.
func selectScenarios(names, tags []string, flood sim.FloodOptions) ([]sim.Scenario, error) {
	if len(names) == 0 && len(tags) == 0 {
		return nil, fmt.Errorf("%w: run needs scenario names or --tag (see doorman-sim list)", errUsage)
	}
	for _, n := range names {
		if _, err := sim.LookupScenario(n); err != nil {
			return nil, fmt.Errorf("%w: %v (see doorman-sim list)", errUsage, err)
		}
	}
	var out []sim.Scenario
	for _, s := range sim.Scenarios() {
		if !slices.Contains(names, s.Name) && (len(tags) == 0 || !slices.ContainsFunc(tags, s.HasTag)) {
			continue
		}
		switch s.Name {
		case "flood":
			s = sim.Flood(flood)
		case "flood-modern":
			s = sim.FloodModern(flood)
		}
		out = append(out, s)
	}
	return out, nil
}

// loadImpls reads the --impl adapter files; none means the built doormand
// (a nil adapter).
func loadImpls(paths []string) ([]*adapter.Adapter, error) {
	if len(paths) == 0 {
		return []*adapter.Adapter{nil}, nil
	}
	var out []*adapter.Adapter
	seen := map[string]string{}
	for _, p := range paths {
		a, err := adapter.LoadAdapter(p)
		if err != nil {
			return nil, fmt.Errorf("%w: --impl: %v", errUsage, err)
		}
		if a.Kind != adapter.KindDaemon {
			return nil, fmt.Errorf("%w: --impl %s: a %s adapter; the scenarios need a daemon adapter", errUsage, p, a.Kind)
		}
		if prev, ok := seen[a.Name]; ok {
			return nil, fmt.Errorf("%w: --impl %s and %s both name implementation %q", errUsage, prev, p, a.Name)
		}
		seen[a.Name] = p
		out = append(out, a)
	}
	return out, nil
}

// runScenarios plays every selected scenario against every implementation,
// prints the table, writes the reports and returns the exit status.
func runScenarios(o options, out io.Writer) (int, error) {
	scens, err := selectScenarios(o.names, o.tags, o.flood)
	if err != nil {
		return exitUsage, err
	}
	impls, err := loadImpls(o.impls)
	if err != nil {
		return exitUsage, err
	}
	rep := &report{Started: time.Now(), Version: version.Line("doorman-sim", version.Classic, version.Modern)}
	for _, s := range scens {
		rep.Scenarios = append(rep.Scenarios, s.Name)
	}
	for _, a := range impls {
		rep.Impls = append(rep.Impls, implInfo(a, o.bin))
	}

	// SIGINT/SIGTERM cancel the context, which closes the network; the
	// deferred Close in Play then finds it already torn down.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.bin == "" && len(scens) > 0 {
		dir, err := os.MkdirTemp("", "doorman-sim-bin-")
		if err != nil {
			return exitUsage, err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintln(out, "building doormand and knock")
		if err := doormandtest.Build(ctx, dir); err != nil {
			return exitUsage, err
		}
		o.bin = dir
	}
	root, keepFailedOnly := o.artifacts, false
	if root == "" {
		root, keepFailedOnly = filepath.Join("doorman-sim-artifacts", rep.Started.Format("20060102-150405")), true
	}
	kernel := &sim.Kernel{}
	for i, a := range impls {
		cfg := sim.RunConfig{Bin: o.bin, Impl: a, Out: out, Kernel: kernel, KeepFailedOnly: keepFailedOnly}
		cfg.Artifacts = filepath.Join(root, cfg.ImplName())
		for _, s := range scens {
			if ctx.Err() != nil {
				break
			}
			res := sim.Play(ctx, s, cfg)
			if ctx.Err() != nil {
				// A scenario cut short says nothing about the daemon.
				break
			}
			rep.add(s, res)
		}
		rep.Impls[i].Installed = !rep.notInstalled(cfg.ImplName())
	}
	rep.Duration = time.Since(rep.Started)
	code, why := rep.exitStatus(ctx.Err() != nil)
	rep.ExitStatus, rep.Problem = code, why

	fmt.Fprintln(out)
	rep.writeTable(out)
	if why != "" {
		fmt.Fprintf(out, "NOT A PASS: %s\n", why)
	}
	if keepFailedOnly {
		removeEmpty(root)
	}
	for _, r := range rep.Results {
		if r.Artifacts != "" && r.Verdict == sim.VerdictFail {
			fmt.Fprintf(out, "artifacts of failed %s [%s]: %s\n", r.Scenario, r.Impl, r.Artifacts)
		}
	}
	var errs []error
	if o.json != "" {
		errs = append(errs, writeFile(o.json, rep.writeJSON))
	}
	if o.junit != "" {
		errs = append(errs, writeFile(o.junit, rep.writeJUnit))
	}
	if err := errors.Join(errs...); err != nil {
		return max(code, exitUsage), err
	}
	return code, nil
}

// implInfo describes the implementation a is (nil: the built doormand).
func implInfo(a *adapter.Adapter, bin string) implRecord {
	if a == nil {
		src := "built from this module"
		if bin != "" {
			src = filepath.Join(bin, "doormand")
		}
		return implRecord{Name: "doormand", Source: src}
	}
	return implRecord{Name: a.Name, Source: a.Source, Description: a.Description, DoormandEvents: a.DoormandEvents}
}

// writeFile writes a report with write, replacing path only when complete.
func writeFile(path string, write func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// removeEmpty removes the directories under root (and root and its parent
// doorman-sim-artifacts) that ended up empty because every scenario in
// them passed.
func removeEmpty(root string) {
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if e.IsDir() {
			_ = os.Remove(filepath.Join(root, e.Name())) // only if empty
		}
	}
	_ = os.Remove(root)
	_ = os.Remove(filepath.Dir(root))
}
