package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"time"
)

const scriptBackend = "script"

// DefaultScriptTimeout bounds one script run when ScriptConfig.Timeout is 0.
const DefaultScriptTimeout = 10 * time.Second

// Output kept from one script run; the protocol needs one short line.
const (
	maxScriptStdout = 64 << 10
	maxScriptStderr = 4 << 10
)

// ScriptConfig configures the script backend.
type ScriptConfig struct {
	// Add and Del are the paths of the firewall-add and firewall-del scripts.
	Add, Del string
	// Journal is the path of the journal file (see the package
	// documentation). "" = no journal: rules of a killed daemon stay behind.
	Journal string
	// Timeout bounds one script run; 0 = DefaultScriptTimeout.
	Timeout time.Duration
	// Logger receives the backend's logs; nil = slog.Default().
	Logger *slog.Logger
}

// Script is the backend that runs the firewall-add / firewall-del scripts of
// Doorman 0.81 unchanged:
//
//	script <interface> <src-ip> <src-port> <dst-ip> <dst-port>
//
// with src-port 0 for a broad rule, and interface "any" for a rule that names
// no interface (Rule.Iface "" or "any"; the script decides what "any" means —
// the shipped iptables scripts then leave out -i). Safe for concurrent use;
// scripts of different doors run in parallel, as the original's per-door
// processes did.
type Script struct {
	cfg ScriptConfig
	log *slog.Logger

	mu      sync.Mutex // guards the fields below and the journal (not held while scripts run)
	started bool
	j       *journal
	nextID  uint64
	live    ruleSet[uint64] // journal ids of added rules
	unsure  []journalEntry  // adds whose script failed without saying so: Close deletes them
}

// NewScript returns an unstarted script backend.
func NewScript(cfg ScriptConfig) *Script {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultScriptTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Script{cfg: cfg, log: log.With("backend", scriptBackend)}
}

// Start opens the journal, runs the delete script for every rule a previous
// run recorded and did not delete, and empties the journal. A delete that
// fails there is logged, not returned: after a reboot the rules are gone and
// the scripts will say so.
func (s *Script) Start(ctx context.Context) error {
	if s.cfg.Add == "" || s.cfg.Del == "" {
		return fmt.Errorf("%s: start: add and delete scripts must both be set", scriptBackend)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.j == nil && s.cfg.Journal != "" {
		j, err := openJournal(s.cfg.Journal)
		if err != nil {
			return fmt.Errorf("%s: start: %w", scriptBackend, err)
		}
		s.j = j
	}
	if s.j != nil {
		left, bad, err := s.j.read()
		if err != nil {
			return fmt.Errorf("%s: start: %s: %w", scriptBackend, s.cfg.Journal, err)
		}
		if bad > 0 {
			s.log.Warn("journal has unusable lines", "journal", s.cfg.Journal, "lines", bad)
		}
		for _, e := range left {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%s: start: %w", scriptBackend, err)
			}
			s.log.Info("removing rule left by an earlier run", "rule", e.Rule.String())
			if err := s.run(ctx, s.cfg.Del, e.Rule); err != nil {
				s.log.Warn("delete of a leftover rule failed", "rule", e.Rule.String(), "err", err)
			}
		}
		if err := s.j.reset(); err != nil {
			return fmt.Errorf("%s: start: %s: %w", scriptBackend, s.cfg.Journal, err)
		}
	}
	s.live.reset()
	s.unsure = nil
	s.started = true
	return nil
}

// Add journals the rule, then runs the add script.
func (s *Script) Add(ctx context.Context, r Rule) error {
	return ruleErr(scriptBackend, "add", r, s.add(ctx, r))
}

func (s *Script) add(ctx context.Context, r Rule) error {
	if err := r.validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return ErrNotStarted
	}
	s.nextID++
	e := journalEntry{ID: s.nextID, Rule: r}
	if s.j != nil {
		if err := s.j.append(e.addLine()); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.mu.Unlock()

	err := s.run(ctx, s.cfg.Add, r)

	s.mu.Lock()
	defer s.mu.Unlock()
	var se *ScriptError
	switch {
	case err == nil:
		s.live.push(r, e.ID)
	case errors.As(err, &se):
		// The script said it failed: take the rule as not added.
		s.journalDel(e.ID)
	default:
		// Timed out or printed garbage: the rule may be in place.
		s.unsure = append(s.unsure, e)
	}
	return err
}

// journalDel records a removal; a failure only costs a needless delete at the
// next Start, so it is logged.
func (s *Script) journalDel(id uint64) {
	if s.j == nil {
		return
	}
	if err := s.j.append(delLine(id)); err != nil {
		s.log.Warn("cannot record rule removal", "journal", s.cfg.Journal, "err", err)
	}
}

// Delete runs the delete script for one copy of the rule.
func (s *Script) Delete(ctx context.Context, r Rule) error {
	return ruleErr(scriptBackend, "delete", r, s.delete(ctx, r))
}

func (s *Script) delete(ctx context.Context, r Rule) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return ErrNotStarted
	}
	id, ok := s.live.peek(r)
	if !ok {
		s.mu.Unlock()
		return ErrUnknownRule
	}
	s.live.pop(r)
	s.mu.Unlock()

	err := s.run(ctx, s.cfg.Del, r)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.live.push(r, id)
		return err
	}
	s.journalDel(id)
	return nil
}

// Close runs the delete script for every rule still added (and for adds that
// ended in doubt), then empties the journal. Rules whose delete fails stay in
// the journal for the next Start, and Close reports them. Idempotent.
func (s *Script) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	rules, ids := s.live.all()
	todo := append([]journalEntry(nil), s.unsure...)
	for i := range rules {
		todo = append(todo, journalEntry{ID: ids[i], Rule: rules[i]})
	}
	var errs []error
	for _, e := range todo {
		if err := s.run(ctx, s.cfg.Del, e.Rule); err != nil {
			errs = append(errs, ruleErr(scriptBackend, "delete", e.Rule, err))
			continue
		}
		s.journalDel(e.ID)
	}
	s.live.reset()
	s.unsure = nil
	s.started = false
	if s.j != nil {
		if len(errs) == 0 {
			if err := s.j.reset(); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, s.j.close())
		s.j = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: close: %w", scriptBackend, err)
	}
	return nil
}

// run runs one script for r and interprets its reply. It returns nil, a
// *ScriptError (the script reported a failure), or another error (timeout,
// exec failure, unusable output) naming the script and what it printed.
func (s *Script) run(ctx context.Context, path string, r Rule) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	args := scriptArgs(r)
	cmd := exec.CommandContext(ctx, path, args[:]...)
	stdout := &cappedBuffer{max: maxScriptStdout}
	stderr := &cappedBuffer{max: maxScriptStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A script's children (iptables) may hold the pipes open after the
	// script is killed; stop waiting for them shortly after.
	cmd.WaitDelay = time.Second
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("script %s: %w after printing %q (stderr %q)", path, ctx.Err(), clip(stdout.String()), clip(stderr.String()))
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return fmt.Errorf("script %s: %w", path, runErr)
	}
	reply, err := ParseScriptOutput(stdout.Bytes())
	if err != nil {
		if runErr != nil {
			return fmt.Errorf("script %s: %v and %w (stderr %q)", path, runErr, err, clip(stderr.String()))
		}
		return fmt.Errorf("script %s: %w (stdout %q, stderr %q)", path, err, clip(stdout.String()), clip(stderr.String()))
	}
	switch {
	case reply.Success:
		if runErr != nil {
			s.log.Warn("script printed 0 but exited non-zero; taken as success", "script", path, "rule", r.String(), "err", runErr)
		}
		return nil
	case reply.Failed():
		return &ScriptError{Script: path, Rule: r, Errno: reply.Errno, Level: reply.Level, Message: reply.Message}
	default:
		s.log.Warn("firewall script warning", "script", path, "rule", r.String(),
			"errno", reply.Errno, "level", reply.Level, "message", reply.Message)
		return nil
	}
}

// cappedBuffer keeps the first max bytes written and discards the rest, so a
// runaway script cannot fill memory.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
