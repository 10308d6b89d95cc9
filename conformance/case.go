//go:build linux

package conformance

import (
	"errors"
	"fmt"
	"time"
)

// Case is one conformance check, identified by a stable slug.
type Case struct {
	ID          string // stable slug, e.g. "4.3/ip-options"
	Requirement string // spec ID, e.g. "CLASSIC-4.3"
	Level       string // MUST, MUST NOT, SHOULD
	Description string
	Target      string // TargetDaemon or TargetClient
	Timeout     time.Duration
	Run         func(*Env) error
}

// Case targets.
const (
	TargetDaemon = "daemon"
	TargetClient = "client"
)

// Verdict is the outcome of a case.
type Verdict string

// Verdicts.
const (
	Pass        Verdict = "pass"
	Fail        Verdict = "fail"
	Skipped     Verdict = "skipped"
	Unsupported Verdict = "unsupported"
)

// Sentinel errors a case returns (wrapped) to report a verdict other than
// pass or fail.
var (
	ErrSkip        = errors.New("skipped")
	ErrUnsupported = errors.New("unsupported")
)

// Skipf returns an error that makes the case "skipped" with the reason.
func Skipf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSkip, fmt.Sprintf(format, args...))
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
	cs = append(cs, replayCases()...)
	cs = append(cs, doorCases()...)
	cs = append(cs, reloadCases()...)
	cs = append(cs, clientCases()...)
	return cs
}
