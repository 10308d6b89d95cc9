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

	"github.com/doorman-project/doorman/conformance/adapter"
	"github.com/doorman-project/doorman/internal/netsim"
)

// ErrScenarioFailed is returned by RunScenario when at least one check of
// the scenario failed.
var ErrScenarioFailed = errors.New("sim: scenario failed")

// ErrUnknownScenario is returned by LookupScenario for a name no scenario has.
var ErrUnknownScenario = errors.New("sim: unknown scenario")

// ErrUnsupported, returned (wrapped) by a scenario's Run, says the daemon
// under test lacks something the scenario needs; the scenario's verdict is
// VerdictUnsupported with the error's text as the reason.
var ErrUnsupported = errors.New("unsupported")

// Scenario is a named end-to-end story played on a fresh simulated network.
type Scenario struct {
	// Name is the short name used on the command line.
	Name string
	// Description says in one line what the scenario shows.
	Description string
	// Tags group scenarios for `doorman-sim run --tag`: TagQuick,
	// TagLoad, TagNetwork, TagLinktypes, TagModern.
	Tags []string
	// Needs lists what the scenario needs from the kernel and from the
	// daemon under test beyond network namespaces, veth pairs and
	// bridges; a scenario whose needs are not met is skipped (kernel) or
	// unsupported (daemon) with the reason, without being played.
	Needs []Need
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
	// Bin is a directory holding the doormand and knock binaries. It is
	// also searched first for the programs an Impl requires.
	Bin string
	// Impl, if set, is the daemon under test, described by a conformance
	// adapter (conformance/README.md); nil means the doormand in Bin.
	Impl *adapter.Adapter
	// Artifacts, if not empty, is a directory that keeps each run's
	// configuration, daemon log, events and pcaps under a sub-directory
	// named for the scenario; otherwise they go to a temporary directory
	// removed afterwards.
	Artifacts string
	// KeepFailedOnly, with Artifacts, removes the scenario's directory
	// again unless the scenario failed.
	KeepFailedOnly bool
	// Out receives the transcript; nil discards it.
	Out io.Writer
	// Prefix is the namespace prefix; empty means "dmscen".
	Prefix string
	// Kernel answers what the kernel supports; nil probes afresh for
	// this run. Share one between runs to probe once.
	Kernel *Kernel
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

	impl     *adapter.Adapter
	mu       sync.Mutex
	out      io.Writer
	start    time.Time
	failed   int
	checks   int
	results  []CheckResult
	figures  []Figure
	skipped  string
	cleanups []func()
}

// CheckResult is one check of a run: what was expected, whether it held,
// and when (since the scenario started).
type CheckResult struct {
	Text string
	OK   bool
	At   time.Duration
	// Unsupported, if not empty, says why the check was not made: the
	// daemon under test lacks what it needs (doormand's event stream, a
	// feature its adapter declares unsupported). OK is false then and
	// the check counts neither as passed nor as failed.
	Unsupported string
}

// Verdict is the outcome of one scenario.
type Verdict string

// Verdicts. A scenario passes when no check failed and at least one
// passed; it is unsupported when none failed and none could be made.
const (
	VerdictPass        Verdict = "pass"
	VerdictFail        Verdict = "fail"
	VerdictSkipped     Verdict = "skipped"     // the kernel or the host lacks something; or not installed
	VerdictUnsupported Verdict = "unsupported" // the daemon under test lacks something
)

// Result is what one playing of a scenario found.
type Result struct {
	Scenario string
	// Impl names the daemon under test: the adapter's name, or
	// "doormand" for the built one.
	Impl    string
	Verdict Verdict
	// Reason says why a scenario was skipped or unsupported, or what
	// stopped a failed one early.
	Reason   string
	Start    time.Time
	Duration time.Duration
	Checks   []CheckResult
	Figures  []Figure
	// Dir is the scenario's artifacts directory, if it was kept.
	Dir string
	// Transcript is what the scenario wrote to RunConfig.Out.
	Transcript string
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
// returns ErrScenarioFailed (wrapped) if any check failed; a skipped or
// unsupported scenario is no error (Play tells them apart).
func RunScenario(ctx context.Context, s Scenario, cfg RunConfig) error {
	res := Play(ctx, s, cfg)
	if res.Verdict == VerdictFail {
		return fmt.Errorf("%w: %s: %s", ErrScenarioFailed, s.Name, res.Reason)
	}
	return nil
}

// ImplName names the daemon under test of cfg in results.
func (cfg RunConfig) ImplName() string {
	if cfg.Impl != nil {
		return cfg.Impl.Name
	}
	return "doormand"
}

// Play plays s on a network of its own, writing the transcript to cfg.Out,
// tears the network down however the scenario ends, and returns what it
// found. A scenario whose needs the kernel or the daemon under test does
// not meet, or whose implementation is not installed, is not played.
func Play(ctx context.Context, s Scenario, cfg RunConfig) (res Result) {
	var transcript strings.Builder
	out := io.Writer(&transcript)
	if cfg.Out != nil {
		out = io.MultiWriter(cfg.Out, &transcript)
	}
	res = Result{Scenario: s.Name, Impl: cfg.ImplName(), Start: time.Now()}
	defer func() {
		res.Duration = time.Since(res.Start)
		res.Transcript = transcript.String()
	}()
	// Not played at all: said in one line, no directory kept.
	notPlayed := func(v Verdict, reason string) Result {
		res.Verdict, res.Reason = v, reason
		fmt.Fprintf(out, "=== %s %s [%s]: %s\n", strings.ToUpper(string(v)), s.Name, res.Impl, reason)
		return res
	}
	if cfg.Impl != nil {
		impl := *cfg.Impl // the caller's adapter keeps its search path
		impl.SearchPath = append([]string{cfg.Bin}, impl.SearchPath...)
		cfg.Impl = &impl
		if m := cfg.Impl.Missing(); m != "" {
			return notPlayed(VerdictSkipped, fmt.Sprintf("implementation not installed: %s needs %s, found neither in %s nor in $PATH", cfg.Impl.Name, m, cfg.Bin))
		}
	}
	if reason := implLacks(cfg.Impl, s.Needs); reason != "" {
		return notPlayed(VerdictUnsupported, reason)
	}
	kernel := cfg.Kernel
	if kernel == nil {
		kernel = &Kernel{}
	}
	if reason := kernel.Lacks(ctx, s.Needs); reason != "" {
		return notPlayed(VerdictSkipped, reason)
	}

	prefix := cfg.Prefix
	if prefix == "" {
		prefix = "dmscen"
	}
	dir := ""
	if cfg.Artifacts != "" {
		// Absolute: the daemon under test runs in its work directory.
		abs, err := filepath.Abs(filepath.Join(cfg.Artifacts, s.Name))
		if err != nil {
			return notPlayed(VerdictFail, err.Error())
		}
		dir = abs
		// A directory of an earlier run of the same name would mix its
		// logs and events into this one's.
		if err := os.RemoveAll(dir); err != nil {
			return notPlayed(VerdictFail, err.Error())
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return notPlayed(VerdictFail, err.Error())
		}
		defer func() {
			if cfg.KeepFailedOnly && res.Verdict != VerdictFail {
				os.RemoveAll(dir)
				return
			}
			res.Dir = dir
		}()
	} else {
		var err error
		if dir, err = os.MkdirTemp("", "doorman-sim-"); err != nil {
			return notPlayed(VerdictFail, err.Error())
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
		return notPlayed(VerdictFail, err.Error())
	}
	defer n.Close()
	r := &Run{Net: n, Bin: cfg.Bin, Dir: dir, Artifacts: cfg.Artifacts, impl: cfg.Impl, out: out, start: time.Now()}
	fmt.Fprintf(out, "=== scenario %s: %s (run %s, daemon %s)\n", s.Name, s.Description, n.RunID(), res.Impl)
	runErr := s.Run(ctx, r)
	r.runCleanups()
	unsupported := errors.Is(runErr, ErrUnsupported)
	if runErr != nil && !unsupported {
		r.Check(false, "scenario ran to the end: %v", runErr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res.Checks, res.Figures = r.results, r.figures
	passed, unsup := 0, 0
	for _, c := range r.results {
		switch {
		case c.Unsupported != "":
			unsup++
		case c.OK:
			passed++
		}
	}
	took := time.Since(r.start).Seconds()
	switch {
	case r.failed > 0:
		res.Verdict = VerdictFail
		res.Reason = fmt.Sprintf("%d of %d checks failed", r.failed, r.checks)
		for _, c := range r.results {
			if !c.OK && c.Unsupported == "" {
				res.Reason += ": " + c.Text
				break
			}
		}
		fmt.Fprintf(out, "=== FAIL %s: %d of %d checks failed (%.1fs)\n", s.Name, r.failed, r.checks, took)
	case r.skipped != "":
		res.Verdict, res.Reason = VerdictSkipped, r.skipped
		fmt.Fprintf(out, "=== SKIP %s: %s (%.1fs)\n", s.Name, r.skipped, took)
	case unsupported || passed == 0:
		res.Verdict = VerdictUnsupported
		res.Reason = fmt.Sprintf("no check could be made against %s", res.Impl)
		if runErr != nil {
			res.Reason = strings.TrimPrefix(runErr.Error(), ErrUnsupported.Error()+": ")
		}
		fmt.Fprintf(out, "=== UNSUPPORTED %s: %s (%.1fs)\n", s.Name, res.Reason, took)
	default:
		res.Verdict = VerdictPass
		fmt.Fprintf(out, "=== PASS %s: %d checks%s (%.1fs)\n", s.Name, passed, unsupportedNote(unsup), took)
	}
	return res
}

func unsupportedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d unsupported by the daemon under test", n)
}

// onCleanup registers fn to run when the scenario's Run has returned,
// before its network is torn down (to stop a daemon it started).
func (r *Run) onCleanup(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, fn)
}

func (r *Run) runCleanups() {
	r.mu.Lock()
	fns := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
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

// Unsupported records a check that could not be made against the daemon
// under test, and why; it neither passes nor fails.
func (r *Run) Unsupported(reason, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	text := fmt.Sprintf(format, args...)
	at := time.Since(r.start)
	r.results = append(r.results, CheckResult{Text: text, At: at, Unsupported: reason})
	fmt.Fprintf(r.out, "[+%.3fs] UNSUPPORTED %s (%s)\n", at.Seconds(), text, reason)
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
