package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
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

// scriptParallel bounds the scripts Apply runs at once (for different doors;
// one door's scripts run in order).
const scriptParallel = 8

// Retrying the removal of a stuck rule: the first retry after
// scriptRetryFirst, then twice as long each time, up to scriptRetryMax.
const (
	scriptRetryFirst = 2 * time.Second
	scriptRetryMax   = 5 * time.Minute
)

// ScriptConfig configures the script backend.
type ScriptConfig struct {
	// Add and Del are the paths of the firewall-add and firewall-del scripts.
	Add, Del string
	// Journal is the path of the journal file (see the package
	// documentation). "" = no journal: rules of a killed daemon stay behind.
	Journal string
	// Timeout bounds one script run; 0 = DefaultScriptTimeout. A script
	// still running then is killed with its whole process group.
	Timeout time.Duration
	// Doors configures the nftables guard table (see NFTables; Guard is
	// always on here): it decides which SYN claims a door, refuses the
	// others even though the scripts' accept rules would let them in, and
	// reports the claim.
	Doors NFTConfig
	// Logger receives the backend's logs; nil = slog.Default().
	Logger *slog.Logger
}

// Script is the backend that runs the firewall-add and firewall-del scripts
// of Doorman 0.81 unchanged:
//
//	script <interface> <src-ip> <src-port> <dst-ip> <dst-port>
//
// with src-port 0 for a broad rule, and interface "any" for a door that
// names none. As in 0.81, a door gets a broad rule when armed, a narrow
// rule (then the broad one goes) when a SYN claims it, and loses its rule
// when it closes. Unlike 0.81, a guard table in nftables (NFTables with
// Guard) decides in the kernel which SYN claims the door and drops the
// others, so the scripts' accept rules admit one connection per door
// (CLASSIC-6.2) however slowly the scripts run.
//
// A rule whose add timed out or printed garbage may be in the firewall; so
// may one whose delete failed. Such a rule is "stuck": its key is blocked in
// the guard table (new connections refused) and its delete is retried, with
// growing pauses, until it succeeds; the journal keeps it for the next start
// in case the daemon dies first. A script that overruns its timeout is
// killed with its whole process group. Safe for concurrent use.
type Script struct {
	cfg   ScriptConfig
	log   *slog.Logger
	doors guardTable

	mu      sync.Mutex // guards the fields below and the journal (not held while scripts run)
	started bool
	ns      nsPin
	j       *journal
	nextID  uint64
	held    map[uint64]*scriptDoor // by door ID
	stuck   map[uint64]*stuckRule  // by journal ID
	blocks  map[key]int            // reasons to keep a key blocked in the guard
	notify  Notify
	stop    chan struct{}
	done    chan struct{}
	wake    chan struct{}

	retryFirst time.Duration // scriptRetryFirst; shorter in tests
}

// guardTable is what the script backend needs of its guard: NFTables with
// Guard set (a Fake in unit tests).
type guardTable interface {
	Start(context.Context, Notify) error
	Apply(context.Context, []Door) []error
	Close(context.Context) error
	Packets(context.Context, Door) (uint64, error)
	setBlocked(d Door, on bool) error
}

// scriptDoor is what the scripts added for one door.
type scriptDoor struct {
	d     Door           // as last applied
	rules []journalEntry // rules in force, broad and/or narrow
}

// stuckRule is a rule that may be in the firewall though no door wants it.
type stuckRule struct {
	e     journalEntry
	door  Door // for the guard's block
	next  time.Time
	pause time.Duration
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
	cfg.Doors.Guard = true
	if cfg.Doors.Logger == nil {
		cfg.Doors.Logger = log
	}
	return &Script{cfg: cfg, log: log.With("backend", scriptBackend), doors: NewNFTables(cfg.Doors), retryFirst: scriptRetryFirst}
}

// Start removes the rules an earlier run recorded and did not delete
// (CLASSIC-6.9), empties the journal, and starts the guard table. A
// leftover whose delete fails stays stuck: it is blocked in the guard and
// retried.
func (s *Script) Start(ctx context.Context, notify Notify) error {
	if s.cfg.Add == "" || s.cfg.Del == "" {
		return fmt.Errorf("%s: start: add and delete scripts must both be set", scriptBackend)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("%s: start: already started", scriptBackend)
	}
	ns, err := pinNS()
	if err != nil {
		return fmt.Errorf("%s: start: %w", scriptBackend, err)
	}
	s.ns = ns
	s.stuck = map[uint64]*stuckRule{}
	if s.j == nil && s.cfg.Journal != "" {
		j, err := openJournal(s.cfg.Journal)
		if err != nil {
			ns.close()
			return fmt.Errorf("%s: start: %w", scriptBackend, err)
		}
		s.j = j
	}
	if s.j != nil {
		left, bad, err := s.j.read()
		if err != nil {
			ns.close()
			return fmt.Errorf("%s: start: %s: %w", scriptBackend, s.cfg.Journal, err)
		}
		if bad > 0 {
			s.log.Warn("journal has unusable lines", "journal", s.cfg.Journal, "lines", bad)
		}
		for _, e := range left {
			if err := ctx.Err(); err != nil {
				ns.close()
				return fmt.Errorf("%s: start: %w", scriptBackend, err)
			}
			s.log.Info("removing rule left by an earlier run", "rule", e.Rule.String())
			if err := s.run(ctx, s.cfg.Del, e.Rule); err != nil {
				s.log.Warn("delete of a leftover rule failed; retrying in the background", "rule", e.Rule.String(), "err", err)
				s.stuck[e.ID] = &stuckRule{e: e, door: doorOfRule(e.Rule), next: time.Now().Add(s.retryFirst), pause: s.retryFirst}
			}
			s.nextID = max(s.nextID, e.ID)
		}
		if len(s.stuck) == 0 {
			if err := s.j.reset(); err != nil {
				ns.close()
				return fmt.Errorf("%s: start: %s: %w", scriptBackend, s.cfg.Journal, err)
			}
		}
	}
	if err := s.doors.Start(ctx, notify); err != nil {
		ns.close()
		return fmt.Errorf("%s: start: %w", scriptBackend, err)
	}
	s.held = map[uint64]*scriptDoor{}
	s.blocks = map[key]int{}
	for _, st := range s.stuck {
		k := st.door.key()
		if s.blocks[k]++; s.blocks[k] == 1 {
			if err := s.doors.setBlocked(st.door, true); err != nil {
				s.log.Error("cannot block a stuck rule's connections", "rule", st.e.Rule.String(), "err", err)
			}
		}
	}
	s.notify = notify
	s.stop, s.done, s.wake = make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
	s.started = true
	go s.routineRetry(s.stop, s.done)
	return nil
}

// doorOfRule is the door a journal rule belonged to, for blocking its key.
func doorOfRule(r Rule) Door {
	return Door{ID: ^uint64(0), Iface: r.Iface, Src: r.Src, Dst: r.Dst, Port: r.DstPort}
}

// Apply brings each door to its State; doors run in parallel, each door's
// scripts in order.
func (s *Script) Apply(ctx context.Context, doors []Door) []error {
	errs := make([]error, len(doors))
	sem := make(chan struct{}, scriptParallel)
	var wg sync.WaitGroup
	for i, d := range doors {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.applyOne(ctx, d); err != nil {
				errs[i] = doorErr(scriptBackend, d, err)
			}
		}()
	}
	wg.Wait()
	return errs
}

func (s *Script) applyOne(ctx context.Context, d Door) error {
	if err := d.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return ErrNotStarted
	}
	rec := s.held[d.ID]
	if rec == nil {
		rec = &scriptDoor{}
	}
	have := rec.d
	s.mu.Unlock()

	guard := func(want Door) error {
		if err := s.doors.Apply(ctx, []Door{want})[0]; err != nil {
			var de *DoorError
			if errors.As(err, &de) {
				return de.Err
			}
			return err
		}
		return nil
	}
	switch {
	case d.State == DoorClosed:
		for _, e := range rec.rules {
			s.remove(ctx, e, d)
		}
		s.forget(d.ID)
		return guard(d)

	case d.State == DoorArmed && have.State == DoorClosed:
		// The guard first: a SYN that slips in before the script's rule
		// exists is claimed (and retransmitted), never admitted unguarded.
		if err := guard(d); err != nil {
			return err
		}
		e, err := s.add(ctx, d, d.SrcPort)
		if err != nil {
			_ = guard(Door{ID: d.ID, Src: d.Src, Dst: d.Dst, Port: d.Port, State: DoorClosed})
			return err
		}
		s.record(d, []journalEntry{e})
		return nil

	case d.State == DoorClaimed && have.State == DoorArmed:
		if err := guard(d); err != nil {
			return err
		}
		if have.SrcPort != 0 {
			s.record(d, rec.rules) // pinned: the rule is already narrow
			return nil
		}
		// 0.81's order: the narrow rule, then the broad one goes, so the
		// connection is never cut in between (CLASSIC-6.4).
		e, err := s.add(ctx, d, d.SrcPort)
		if err != nil {
			return err
		}
		for _, old := range rec.rules {
			s.remove(ctx, old, d)
		}
		s.record(d, []journalEntry{e})
		return nil

	case d.State == DoorArmed && have.State == DoorClaimed:
		// Re-arm: the broad rule again, then release the claim, then the
		// narrow rule goes.
		if d.SrcPort != 0 {
			if err := guard(d); err != nil {
				return err
			}
			s.record(d, rec.rules)
			return nil
		}
		e, err := s.add(ctx, d, 0)
		if err != nil {
			return err
		}
		if err := guard(d); err != nil {
			s.remove(ctx, e, d)
			return err
		}
		for _, old := range rec.rules {
			s.remove(ctx, old, d)
		}
		s.record(d, []journalEntry{e})
		return nil

	default:
		// Narrow, or no change: only the guard table moves.
		if err := guard(d); err != nil {
			return err
		}
		s.record(d, rec.rules)
		return nil
	}
}

func (s *Script) record(d Door, rules []journalEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[d.ID] = &scriptDoor{d: d, rules: rules}
}

func (s *Script) forget(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, id)
}

// block and unblock count the reasons to keep a key blocked in the guard:
// a broad script rule exists for it (it would admit any SYN of the key
// once the door's armed element expired, and admits rival SYNs the guard
// does not see as rivals), or a rule for it is stuck.
func (s *Script) block(d Door) {
	k := d.key()
	s.mu.Lock()
	s.blocks[k]++
	first := s.blocks[k] == 1
	s.mu.Unlock()
	if first {
		if err := s.doors.setBlocked(d, true); err != nil {
			s.log.Error("cannot block new connections of a key", "door", d.String(), "err", err)
		}
	}
}

func (s *Script) unblock(d Door) {
	k := d.key()
	s.mu.Lock()
	s.blocks[k]--
	last := s.blocks[k] <= 0
	if last {
		delete(s.blocks, k)
	}
	s.mu.Unlock()
	if last {
		if err := s.doors.setBlocked(d, false); err != nil {
			s.log.Warn("cannot unblock a key", "door", d.String(), "err", err)
		}
	}
}

// add journals the rule for d with source port sport, then runs the add
// script. A broad rule blocks its key from before it exists until it is
// gone. A failure the script reported leaves nothing; a failure it did not
// (timeout, garbage) may have left the rule: it becomes stuck.
func (s *Script) add(ctx context.Context, d Door, sport uint16) (journalEntry, error) {
	r := d.rule(sport)
	s.mu.Lock()
	s.nextID++
	e := journalEntry{ID: s.nextID, Rule: r}
	if s.j != nil {
		if err := s.j.append(e.addLine()); err != nil {
			s.mu.Unlock()
			return e, err
		}
	}
	s.mu.Unlock()
	if r.Broad() {
		s.block(d)
	}
	err := s.run(ctx, s.cfg.Add, r)
	var se *ScriptError
	switch {
	case err == nil:
		return e, nil
	case errors.As(err, &se):
		s.journalDel(e.ID)
		if r.Broad() {
			s.unblock(d)
		}
	default:
		s.makeStuck(e, d, err)
		if r.Broad() {
			s.unblock(d) // the stuck rule holds its own block now
		}
	}
	return e, err
}

// remove runs the delete script for e; if it fails, e becomes stuck.
func (s *Script) remove(ctx context.Context, e journalEntry, d Door) {
	err := s.run(ctx, s.cfg.Del, e.Rule)
	if err != nil {
		s.makeStuck(e, d, err)
	} else {
		s.journalDel(e.ID)
	}
	if e.Rule.Broad() {
		s.unblock(d)
	}
}

// makeStuck blocks e's key in the guard and queues its removal.
func (s *Script) makeStuck(e journalEntry, d Door, cause error) {
	s.log.Error("firewall rule may remain: blocking its new connections and retrying its removal",
		"rule", e.Rule.String(), "err", cause)
	s.block(d)
	s.mu.Lock()
	s.stuck[e.ID] = &stuckRule{e: e, door: d, next: time.Now().Add(s.retryFirst), pause: s.retryFirst}
	s.mu.Unlock()
	s.notify.fault(Fault{Op: "remove rule " + e.Rule.String(), Err: cause})
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// journalDel records a removal; a failure only costs a needless delete at the
// next Start, so it is logged.
func (s *Script) journalDel(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.j == nil {
		return
	}
	if err := s.j.append(delLine(id)); err != nil {
		s.log.Warn("cannot record rule removal", "journal", s.cfg.Journal, "err", err)
	}
}

// routineRetry retries the removal of stuck rules until each is gone.
func (s *Script) routineRetry(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTimer(s.retryFirst)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-s.wake:
		}
		now := time.Now()
		s.mu.Lock()
		var due []*stuckRule
		next := now.Add(scriptRetryMax)
		for _, st := range s.stuck {
			if !st.next.After(now) {
				due = append(due, st)
			} else if st.next.Before(next) {
				next = st.next
			}
		}
		s.mu.Unlock()
		for _, st := range due {
			err := s.run(context.Background(), s.cfg.Del, st.e.Rule)
			s.mu.Lock()
			if err != nil {
				st.pause = min(2*st.pause, scriptRetryMax)
				st.next = time.Now().Add(st.pause)
				if st.next.Before(next) {
					next = st.next
				}
				s.mu.Unlock()
				s.notify.fault(Fault{Op: "remove rule " + st.e.Rule.String(), Err: err})
				continue
			}
			delete(s.stuck, st.e.ID)
			s.mu.Unlock()
			s.journalDel(st.e.ID)
			s.unblock(st.door)
			s.log.Info("stuck firewall rule removed", "rule", st.e.Rule.String())
			s.notify.fault(Fault{Op: "remove rule " + st.e.Rule.String(), Repaired: true})
		}
		t.Reset(max(time.Until(next), 10*time.Millisecond))
	}
}

// Close runs the delete script for every rule still added and every stuck
// rule, empties the journal if all went, and deletes the guard table.
// Rules whose delete fails stay in the journal for the next Start, and
// Close reports them. Idempotent.
func (s *Script) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return nil
	}
	s.started = false
	stop, done := s.stop, s.done
	s.mu.Unlock()
	close(stop)
	<-done

	s.mu.Lock()
	var todo []journalEntry
	for _, rec := range s.held {
		todo = append(todo, rec.rules...)
	}
	for _, st := range s.stuck {
		todo = append(todo, st.e)
	}
	s.held, s.stuck = nil, nil
	s.mu.Unlock()
	var errs []error
	for _, e := range todo {
		if err := s.run(ctx, s.cfg.Del, e.Rule); err != nil {
			errs = append(errs, ruleErr(scriptBackend, "delete", e.Rule, err))
			continue
		}
		s.journalDel(e.ID)
	}
	errs = append(errs, s.doors.Close(ctx))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.j != nil {
		if len(errs) == 1 && errs[0] == nil {
			if err := s.j.reset(); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, s.j.close())
		s.j = nil
	}
	s.ns.close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: close: %w", scriptBackend, err)
	}
	return nil
}

// run runs one script for r, in the namespace the backend started in, and
// interprets its reply. It returns nil, a *ScriptError (the script reported
// a failure), or another error (timeout, exec failure, unusable output)
// naming the script and what it printed.
func (s *Script) run(ctx context.Context, path string, r Rule) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	args := scriptArgs(r)
	cmd := exec.CommandContext(ctx, path, args[:]...)
	stdout := &cappedBuffer{max: maxScriptStdout}
	stderr := &cappedBuffer{max: maxScriptStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// The script and whatever it started (iptables) form a process group,
	// killed whole when the script overruns: a hung child must not keep
	// running (and perhaps add its rule later).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Children may hold the pipes open after the kill; stop waiting shortly
	// after.
	cmd.WaitDelay = time.Second
	runErr := s.ns.do(cmd.Run)
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

// Packets reports the packets of a door's claimed connection (see
// NFTables.Packets).
func (s *Script) Packets(ctx context.Context, d Door) (uint64, error) { return s.doors.Packets(ctx, d) }
