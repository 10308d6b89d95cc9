//go:build linux

package conformance

import (
	"errors"
	"fmt"
	"github.com/doorman-project/doorman/conformance/adapter"
	"time"
)

// Case is one conformance check, identified by a stable slug.
type Case struct {
	ID          string // stable slug, e.g. "4.3/ip-options"
	Requirement string // spec ID, e.g. "CLASSIC-4.3"
	// Also lists further requirements the case checks besides
	// Requirement (for the coverage report).
	Also        []string
	Level       string // MUST, MUST NOT, SHOULD
	Description string
	Target      string // TargetDaemon or TargetClient
	Timeout     time.Duration
	// OpenHost runs the daemon without the adapter's preamble: the admin
	// firewall accepts everything (after reset), so only what the
	// implementation itself sets up stands between the wire and the host.
	OpenHost bool
	// Configure, if set, changes the case's model before the daemon
	// first starts (a setting of the case's own, such as classic off).
	Configure func(*Model)
	// NoStart leaves the first start to Run: for a case that checks a
	// start which must fail.
	NoStart bool
	// Prepare, if set, runs after the adapter's files are written and
	// before the daemon starts (e.g. to plant a 0.81 hash archive).
	Prepare func(*Env) error
	Run     func(*Env) error
}

// Case targets.
const (
	TargetDaemon = "daemon"
	TargetClient = "client"
)

// Verdict is the outcome of a case.
type Verdict string

// Verdicts. Error means the case could not be run because the setup
// failed (an adapter command could not be executed, a template did not
// render, the implementation never became ready, the harness itself
// failed): it says nothing about conformance, and a run with one is not a
// success.
const (
	Pass        Verdict = "pass"
	Fail        Verdict = "fail"
	Skipped     Verdict = "skipped"
	Unsupported Verdict = "unsupported"
	Error       Verdict = "error"
)

// Sentinel errors a case returns (wrapped) to report a verdict other than
// pass or fail.
var (
	ErrSkip        = errors.New("skipped")
	ErrUnsupported = errors.New("unsupported")
	// ErrSetup marks a failure of the setup rather than of the
	// implementation under test; the case's verdict is Error. It is the
	// adapter package's, so that its failures classify themselves.
	ErrSetup = adapter.ErrSetup
)

// Skipf returns an error that makes the case "skipped" with the reason.
func Skipf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSkip, fmt.Sprintf(format, args...))
}

// setupErr marks err as a setup error (verdict Error); nil stays nil.
func setupErr(err error) error {
	if err == nil || errors.Is(err, ErrSetup) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrSetup, err)
}

// mismatch is the shape of a failure: what was expected, what was seen.
// expected is plain text; observed is a format for args.
func mismatch(expected, observed string, args ...any) error {
	return fmt.Errorf("expected %s, observed %s", expected, fmt.Sprintf(observed, args...))
}

// Result is the verdict for one case.
type Result struct {
	Case     *Case         `json:"-"`
	ID       string        `json:"id"`
	Req      string        `json:"requirement"`
	Level    string        `json:"level"`
	Verdict  Verdict       `json:"verdict"`
	Detail   string        `json:"detail,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	Impl     string        `json:"implementation"`
	Artifact string        `json:"artifacts,omitempty"`
}

// Cases returns every case in the suite, in spec order.
func Cases() []*Case {
	var cs []*Case
	cs = append(cs, packetCases()...)
	cs = append(cs, ipv6Cases()...)
	cs = append(cs, verifyCases()...)
	cs = append(cs, frameCases()...)
	cs = append(cs, replayCases()...)
	cs = append(cs, doorCases()...)
	cs = append(cs, reloadCases()...)
	cs = append(cs, guestListCases()...)
	cs = append(cs, modernCases()...)
	cs = append(cs, clientCases()...)
	cs = append(cs, modernClientCases()...)
	return cs
}
