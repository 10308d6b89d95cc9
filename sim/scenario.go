//go:build linux

package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/doorman-project/doorman/internal/netsim"
)

// ErrScenarioFailed is returned by RunScenario when at least one check of
// the scenario failed.
var ErrScenarioFailed = errors.New("sim: scenario failed")

// ErrUnknownScenario is returned by LookupScenario for a name no scenario has.
var ErrUnknownScenario = errors.New("sim: unknown scenario")

// Scenario is a named end-to-end story played on a fresh simulated network.
type Scenario struct {
	// Name is the short name used on the command line.
	Name string
	// Description says in one line what the scenario shows.
	Description string
	// Tags group scenarios for `doorman-sim run --tag`: TagQuick,
	// TagLoad, TagNetwork, TagLinktypes, TagModern.
	Tags []string
	// Run plays the scenario. It records steps and checks on r and returns
	// an error only when it cannot go on (a setup failure, a failed
	// precondition); failed checks are counted by r.
	Run func(ctx context.Context, r *Run) error
}

// Scenario tags.
const (
	TagQuick     = "quick"     // a few seconds, light load: for every CI run
	TagLoad      = "load"      // floods and crowds that print performance figures
	TagNetwork   = "network"   // topologies: NAT, routers, lossy links
	TagLinktypes = "linktypes" // capture on link types other than Ethernet
	TagModern    = "modern"    // the modern protocol (spec section 12)
)

// HasTag reports whether s carries tag.
func (s Scenario) HasTag(tag string) bool {
	for _, t := range s.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// Scenarios returns the built-in scenarios in their suggested order, the
// load scenarios at the load their figures are judged at (Load's zero
// value); see ScenariosFor for a lighter one.
func Scenarios() []Scenario { return ScenariosFor(Load{}) }

// ScenariosFor is Scenarios with the load scenarios sized by l.
func ScenariosFor(l Load) []Scenario {
	all := []Scenario{happyScenario(), replayScenario(), timeoutScenario(), modernScenario()}
	all = append(all, networkScenarios()...)
	l = l.withDefaults()
	return append(all, crowdScenario(), Flood(l.Flood), FloodModern(l.Flood), synfloodScenario(l), latencyScenario(l),
		bigstoreScenario(l), linktypesScenario())
}

// LookupScenario returns the built-in scenario called name.
func LookupScenario(name string) (Scenario, error) {
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, nil
		}
	}
	return Scenario{}, fmt.Errorf("%w: %q", ErrUnknownScenario, name)
}

// RunConfig says where a scenario finds its binaries and writes its output.
type RunConfig struct {
	// Bin is a directory holding the doormand and knock binaries.
	Bin string
	// Artifacts, if not empty, is a directory that keeps each run's
	// configuration and daemon log under a sub-directory named for the
	// scenario; otherwise they go to a temporary directory removed afterwards.
	Artifacts string
	// Out receives the transcript; nil discards it.
	Out io.Writer
	// Prefix is the namespace prefix; empty means "dmscen".
	Prefix string
}

// Run is one playing of a scenario: its network, its working directory
// and its transcript.
type Run struct {
	// Net is the scenario's network; it is closed when the scenario ends.
	Net *netsim.Net
	// Bin is the directory holding doormand and knock.
	Bin string
	// Dir is a working directory for configuration files and logs.
	Dir string
	// Artifacts is RunConfig.Artifacts: when set, the run keeps pcaps.
	Artifacts string

	mu      sync.Mutex
	out     io.Writer
	start   time.Time
	failed  int
	checks  int
	results []CheckResult
	figures []Figure
	skipped string
}

// CheckResult is one check of a run: what was expected, whether it held,
// and when (since the scenario started).
type CheckResult struct {
	Text string
	OK   bool
	At   time.Duration
}

// Figure is a measurement a scenario reports: a latency percentile, a
// rate, a CPU share. Unit is a short unit name ("ms", "pkt/s",
// "%core", "ns/pkt", "MB").
type Figure struct {
	Name  string
	Value float64
	Unit  string
}

// RunScenario plays s on a network of its own, writing the transcript to
// cfg.Out, and tears the network down however the scenario ends. It
// returns ErrScenarioFailed (wrapped) if any check failed.
func RunScenario(ctx context.Context, s Scenario, cfg RunConfig) (err error) {
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = "dmscen"
	}
	dir := ""
	if cfg.Artifacts != "" {
		dir = filepath.Join(cfg.Artifacts, s.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("scenario %s: %w", s.Name, err)
		}
	} else {
		if dir, err = os.MkdirTemp("", "doorman-sim-"); err != nil {
			return fmt.Errorf("scenario %s: %w", s.Name, err)
		}
		defer os.RemoveAll(dir)
	}
	// Leftovers of an earlier run of this prefix that died without its
	// cleanup (kill -9, a crash) go first; live runs are left alone.
	if swept, err := netsim.Sweep(prefix); err != nil {
		fmt.Fprintf(out, "sweep of earlier %s runs failed: %v\n", prefix, err)
	} else if len(swept) > 0 {
		fmt.Fprintf(out, "removed leftovers of crashed earlier runs: %s\n", strings.Join(swept, " "))
	}
	n, err := netsim.New(ctx, netsim.Options{Prefix: prefix, Artifacts: dir})
	if err != nil {
		return fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	defer n.Close()
	r := &Run{Net: n, Bin: cfg.Bin, Dir: dir, Artifacts: cfg.Artifacts, out: out, start: time.Now()}
	fmt.Fprintf(out, "=== scenario %s: %s (run %s)\n", s.Name, s.Description, n.RunID())
	runErr := s.Run(ctx, r)
	if runErr != nil {
		r.Check(false, "scenario ran to the end: %v", runErr)
	}
	r.mu.Lock()
	failed, checks := r.failed, r.checks
	r.mu.Unlock()
	if failed > 0 {
		fmt.Fprintf(out, "=== FAIL %s: %d of %d checks failed (%.1fs)\n", s.Name, failed, checks, time.Since(r.start).Seconds())
		return fmt.Errorf("%w: %s: %d of %d checks failed", ErrScenarioFailed, s.Name, failed, checks)
	}
	fmt.Fprintf(out, "=== PASS %s: %d checks (%.1fs)\n", s.Name, checks, time.Since(r.start).Seconds())
	return nil
}

// Step records an action in the transcript.
func (r *Run) Step(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, "[+%.3fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// Check records an expectation and whether it held, and returns ok.
func (r *Run) Check(ok bool, format string, args ...any) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks++
	verdict := "PASS"
	if !ok {
		r.failed++
		verdict = "FAIL"
	}
	text := fmt.Sprintf(format, args...)
	at := time.Since(r.start)
	r.results = append(r.results, CheckResult{Text: text, OK: ok, At: at})
	fmt.Fprintf(r.out, "[+%.3fs] %s %s\n", at.Seconds(), verdict, text)
	return ok
}

// Figure records a measurement and prints it in the transcript.
func (r *Run) Figure(name string, value float64, unit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.figures = append(r.figures, Figure{Name: name, Value: value, Unit: unit})
	fmt.Fprintf(r.out, "[+%.3fs] FIGURE %s = %.6g %s\n", time.Since(r.start).Seconds(), name, value, unit)
}

// Skip records that the scenario cannot run here and why (a kernel
// without a feature it needs); the scenario's Run should return at once.
func (r *Run) Skip(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skipped = fmt.Sprintf(format, args...)
	fmt.Fprintf(r.out, "[+%.3fs] SKIP %s\n", time.Since(r.start).Seconds(), r.skipped)
}

// Failed reports whether any check failed so far.
func (r *Run) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed > 0
}

// ScenarioNames returns the built-in scenario names, sorted.
func ScenarioNames() []string {
	var names []string
	for _, s := range Scenarios() {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}
