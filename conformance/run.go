//go:build linux

package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Options configure a suite run.
type Options struct {
	// Impl is the implementation under test: a daemon or a client adapter.
	Impl *Adapter
	// Client is an optional client adapter run alongside a daemon adapter.
	Client *Adapter
	// Filter selects cases by ID; nil runs all.
	Filter *regexp.Regexp
	// OutDir receives per-case artifacts (daemon logs, pcaps); "" keeps
	// them only for the duration of the case.
	OutDir string
	// SpecDir holds doorman.md and vectors/classic.json; "" searches the
	// working directory and its parents.
	SpecDir string
	// Prefix starts the namespace names, followed by a random run id: a
	// few lower-case letters and digits; "" means DefaultPrefix.
	Prefix string
	// OnResult, if set, is called after each case.
	OnResult func(Result)
	// Topology, if set, is used instead of creating one (the caller closes it).
	Topology *Topology
}

func (o *Options) adapters() (daemon, client *Adapter) {
	for _, a := range []*Adapter{o.Impl, o.Client} {
		if a == nil {
			continue
		}
		if a.Kind == KindClient {
			client = a
		} else {
			daemon = a
		}
	}
	return
}

// Selected returns the cases a run with these options would run.
func (o *Options) Selected() []*Case {
	d, c := o.adapters()
	var out []*Case
	for _, cs := range Cases() {
		if (cs.Target == TargetDaemon && d == nil) || (cs.Target == TargetClient && c == nil) {
			continue
		}
		if o.Filter != nil && !o.Filter.MatchString(cs.ID) {
			continue
		}
		out = append(out, cs)
	}
	return out
}

// RunSuite runs the selected cases and returns their results. It returns
// ErrNoPrivilege (wrapped) when the topology cannot be created.
func RunSuite(ctx context.Context, o Options) ([]Result, error) {
	daemonA, clientA := o.adapters()
	cases := o.Selected()
	var results []Result
	emit := func(r Result) {
		results = append(results, r)
		if o.OnResult != nil {
			o.OnResult(r)
		}
	}
	missing := map[*Adapter]string{}
	for _, a := range []*Adapter{daemonA, clientA} {
		if a != nil {
			if m := a.Missing(); m != "" {
				missing[a] = m
			}
		}
	}
	adapterFor := func(c *Case) *Adapter {
		if c.Target == TargetClient {
			return clientA
		}
		return daemonA
	}
	needTopo := false
	for _, c := range cases {
		if _, ok := missing[adapterFor(c)]; !ok {
			needTopo = true
		}
	}
	specDir := o.SpecDir
	if specDir == "" {
		specDir, _ = FindSpecDir(".")
	}
	// Without vectors the cases that need them report "skipped".
	var vectors *Vectors
	var modernVectors *ModernVectors
	if specDir != "" {
		vectors, _ = LoadVectors(filepath.Join(specDir, "vectors", "classic.json"))
		modernVectors, _ = LoadModernVectors(filepath.Join(specDir, "vectors", "modern.json"))
	}

	topo := o.Topology
	if needTopo && topo == nil {
		var err error
		topo, err = NewTopology(ctx, o.Prefix)
		if err != nil {
			return nil, err
		}
		defer topo.Close()
	}
	if needTopo && daemonA != nil {
		if err := topo.listen(); err != nil {
			return nil, err
		}
	}

	for _, c := range cases {
		a := adapterFor(c)
		r := Result{Case: c, ID: c.ID, Req: c.Requirement, Level: c.Level, Impl: a.Name}
		if m, ok := missing[a]; ok {
			r.Verdict, r.Detail = Skipped, fmt.Sprintf("implementation not installed (%s not found)", m)
			emit(r)
			continue
		}
		if why, ok := a.UnsupportedReason(c.ID); ok {
			r.Verdict, r.Detail = Unsupported, why
			emit(r)
			continue
		}
		if ctx.Err() != nil {
			r.Verdict, r.Detail = Skipped, "run interrupted"
			emit(r)
			continue
		}
		start := time.Now()
		r.Verdict, r.Detail, r.Artifact = runCase(ctx, c, topo, daemonA, clientA, vectors, modernVectors, o.OutDir)
		r.Duration = time.Since(start)
		emit(r)
	}
	return results, nil
}

func sanitize(id string) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(id)
}

// captureHosts are the hosts whose LAN traffic is saved per case (with
// Options.OutDir), by pcap file name.
func captureHosts(t *Topology) map[string]Host {
	return map[string]Host{"server": t.Server, "client": t.Client, "client2": t.Client2, "foreign": t.Foreign}
}

func runCase(ctx context.Context, c *Case, topo *Topology, daemonA, clientA *Adapter, vec *Vectors, mvec *ModernVectors, outDir string) (v Verdict, detail, artifacts string) {
	work, err := os.MkdirTemp("", topo.RunID()+"-work-")
	if err != nil {
		return Error, "harness: " + err.Error(), ""
	}
	defer os.RemoveAll(work)
	art := filepath.Join(work, "artifacts")
	if outDir != "" {
		name := "client"
		if c.Target == TargetDaemon {
			name = daemonA.Name
		} else {
			name = clientA.Name
		}
		art = filepath.Join(outDir, sanitize(name), sanitize(c.ID))
		artifacts = art
	}
	if err := os.MkdirAll(art, 0o755); err != nil {
		return Error, "harness: " + err.Error(), ""
	}
	if outDir != "" {
		// Every host's LAN traffic, for reading a failure afterwards.
		for name, h := range captureHosts(topo) {
			sn, err := startSniffer(h)
			if err != nil {
				return Error, "harness: capture: " + err.Error(), artifacts
			}
			defer func() {
				sn.stop()
				if err := sn.writePcap(filepath.Join(art, name+".pcap")); err != nil && v == Pass {
					v, detail = Error, "harness: writing "+name+".pcap: "+err.Error()
				}
			}()
		}
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stateDir := filepath.Join(work, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return Error, "harness: " + err.Error(), ""
	}
	e := &Env{ctx: cctx, Topo: topo, Impl: daemonA, Client: clientA, ArtifactDir: art, WorkDir: stateDir,
		openHost: c.OpenHost, prepare: c.Prepare, values: map[string]string{}}
	if vec != nil {
		e.Vectors = vec
	}
	e.ModernVectors = mvec
	if c.Target == TargetDaemon {
		e.model = topo.model(stateDir)
		if c.Configure != nil {
			c.Configure(&e.model)
		}
		defer func() {
			if e.daemon != nil {
				if !e.DaemonAlive() {
					detail = strings.TrimSpace(detail + "; daemon exited during the case (CLASSIC-4.8)")
					if v == Pass {
						v = Fail
					}
				}
				if err := e.StopDaemon(); err != nil && v == Pass {
					v, detail = Fail, err.Error()
				}
			}
			if err := e.runCommands("reset", daemonA.Reset); err != nil && v == Pass {
				v, detail = Error, "after the case: "+err.Error()
			}
		}()
		// Nothing was tested if the first start fails: a setup error,
		// whoever is at fault. A failed restart inside a case is a failure.
		if !c.NoStart {
			if err := e.StartDaemon(true); err != nil {
				return Error, "the implementation did not start: " + err.Error(), artifacts
			}
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(e) }()
	select {
	case err = <-done:
	case <-cctx.Done():
		err = fmt.Errorf("case timed out after %v", timeout)
		// Let the case goroutine finish before tearing down its daemon.
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
	if len(e.notes) > 0 {
		detail = strings.Join(e.notes, "; ")
	}
	switch {
	case err == nil:
		return Pass, detail, artifacts
	case errors.Is(err, ErrSkip):
		return Skipped, strings.TrimPrefix(err.Error(), "skipped: "), artifacts
	case errors.Is(err, ErrUnsupported):
		return Unsupported, err.Error(), artifacts
	case errors.Is(err, ErrSetup):
		return Error, err.Error(), artifacts
	}
	return Fail, err.Error(), artifacts
}

// Run runs the whole suite against impl as subtests of t: every case must
// pass (skipped and unsupported cases are reported as skips). It skips t when
// namespaces cannot be created.
func Run(t *testing.T, impl *Adapter) {
	t.Helper()
	RunWith(t, Options{Impl: impl})
}

// RunWith is Run with options.
func RunWith(t *testing.T, o Options) []Result {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("conformance needs root to create network namespaces")
	}
	results, err := RunSuite(context.Background(), o)
	if errors.Is(err, ErrNoPrivilege) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	if sum := Summarize(results); sum.Pass+sum.Fail == 0 {
		// A run that tested nothing must not look like a success.
		t.Errorf("conformance: %s", sum.Problem())
	}
	for _, r := range results {
		t.Run(r.ID, func(t *testing.T) {
			switch r.Verdict {
			case Fail:
				t.Errorf("%s %s (%s): %s", r.Req, r.Level, r.Impl, r.Detail)
			case Error:
				t.Errorf("setup error (%s): %s", r.Impl, r.Detail)
			case Skipped, Unsupported:
				t.Skipf("%s: %s", r.Verdict, r.Detail)
			default:
				t.Logf("pass in %v %s", r.Duration.Round(time.Millisecond), r.Detail)
			}
		})
	}
	return results
}
