//go:build linux

package conformance

import (
	"strings"
	"time"
)

// Cases for section 5: replay protection.
func replayCases() []*Case {
	return []*Case{
		{ID: "5.1/replay-same-source", Requirement: "CLASSIC-5.1", Level: "MUST", Target: TargetDaemon,
			Description: "an accepted knock sent again from the same address opens nothing",
			Run: func(e *Env) error {
				k := knockFor(portA)
				return acceptThenReplay(e, k, k, e.Topo.Client, "replay from the same address")
			}},
		{ID: "5.1/replay-other-source", Requirement: "CLASSIC-5.1", Level: "MUST", Target: TargetDaemon,
			Description: "an accepted knock sent again from another address in the guest's list opens nothing",
			Run: func(e *Env) error {
				k := knockFor(portA)
				return acceptThenReplay(e, k, k, e.Topo.Client2, "replay from another allowed address")
			}},
		{ID: "2.5/case-variant-replay", Requirement: "CLASSIC-2.5", Level: "MUST", Target: TargetDaemon,
			Description: "the upper-case spelling of an accepted knock is the same knock: a replay",
			Run: func(e *Env) error {
				k := knockFor(portA)
				i := strings.LastIndexByte(k, ' ')
				upper := k[:i] + strings.ToUpper(k[i:])
				return acceptThenReplay(e, k, upper, e.Topo.Client, "upper-case variant of an accepted knock")
			}},
		{ID: "5.5/replay-after-restart", Requirement: "CLASSIC-5.5/1", Level: "MUST", Target: TargetDaemon,
			Description: "a knock accepted before a restart (stop signal, start) is refused after it",
			Run: func(e *Env) error {
				return replayAcross(e, func() error {
					if err := e.StopDaemon(); err != nil {
						return err
					}
					return e.StartDaemon(true)
				})
			}},
		{ID: "5.5/replay-after-kill9", Requirement: "CLASSIC-5.5/2", Level: "MUST", Target: TargetDaemon,
			Description: "a knock whose door opened is refused after the daemon is killed with SIGKILL and started again",
			Run: func(e *Env) error {
				return replayAcross(e, func() error {
					if err := e.KillDaemon(); err != nil {
						return err
					}
					return e.StartDaemon(false)
				})
			}},
	}
}

// acceptThenReplay sends first from the first client, checks the door
// opens, then sends again from `from` and checks nothing opens for it.
func acceptThenReplay(e *Env, first, again string, from Host, why string) error {
	if err := e.knockSettle(e.Topo.Client, first); err != nil {
		return err
	}
	if err := e.expectOpen(e.Topo.Client, portA, "first knock"); err != nil {
		return err
	}
	if err := e.knockSettle(from, again); err != nil {
		return err
	}
	if err := e.expectClosed(from, portA, why); err != nil {
		return err
	}
	return e.control(portA)
}

func replayAcross(e *Env, restart func() error) error {
	k := knockFor(portA)
	if err := e.knockSettle(e.Topo.Client, k); err != nil {
		return err
	}
	if err := e.expectOpen(e.Topo.Client, portA, "knock before the restart"); err != nil {
		return err
	}
	if err := restart(); err != nil {
		return err
	}
	if err := e.knockSettle(e.Topo.Client, k); err != nil {
		return err
	}
	if err := e.expectClosed(e.Topo.Client, portA, "replay after the restart"); err != nil {
		return err
	}
	time.Sleep(10 * time.Millisecond)
	return e.control(portA)
}
