package firewall

import (
	"context"
	"slices"
	"sync"
)

const fakeBackend = "fake"

// Fake is an in-memory backend for unit tests of the daemon. It checks rules
// like the real backends (invalid rules, Delete of an unknown rule, use
// before Start), records the live rule set and every call, and can be told to
// fail the next Add or Delete. Safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	started  bool
	rules    []Rule // live rules in the order added; equal rules may repeat
	calls    []FakeCall
	failNext error
}

// FakeCall is one Add or Delete the Fake saw.
type FakeCall struct {
	Op   string // "add" or "delete"
	Rule Rule
	Err  error // what the call returned
}

// NewFake returns an unstarted Fake.
func NewFake() *Fake { return &Fake{} }

// Start makes the Fake ready; like the real backends it forgets any rules of
// an earlier run.
func (f *Fake) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
	f.started = true
	return nil
}

// Add records r as live, or fails with the error given to FailNext.
func (f *Fake) Add(ctx context.Context, r Rule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.checkLocked(ctx, r)
	if err == nil {
		if err = r.validate(); err == nil {
			f.rules = append(f.rules, r)
		}
	}
	return f.recordLocked("add", r, err)
}

// Delete removes one copy of r, or fails with the error given to FailNext or
// ErrUnknownRule.
func (f *Fake) Delete(ctx context.Context, r Rule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.checkLocked(ctx, r)
	if err == nil {
		// The newest copy goes, as in the real backends.
		err = ErrUnknownRule
		for i, have := range slices.Backward(f.rules) {
			if have == r {
				f.rules = slices.Delete(f.rules, i, i+1)
				err = nil
				break
			}
		}
	}
	return f.recordLocked("delete", r, err)
}

func (f *Fake) checkLocked(ctx context.Context, _ Rule) error {
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !f.started {
		return ErrNotStarted
	}
	return nil
}

func (f *Fake) recordLocked(op string, r Rule, err error) error {
	err = ruleErr(fakeBackend, op, r, err)
	f.calls = append(f.calls, FakeCall{Op: op, Rule: r, Err: err})
	return err
}

// Close removes every rule. Idempotent.
func (f *Fake) Close(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
	f.started = false
	return nil
}

// Rules returns a copy of the live rules, oldest first.
func (f *Fake) Rules() []Rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rules)
}

// Calls returns a copy of every Add and Delete seen, in order.
func (f *Fake) Calls() []FakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// FailNext makes the next Add or Delete (whichever comes first) fail with err,
// wrapped in a *RuleError, without changing the rule set. nil cancels it.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = err
}
