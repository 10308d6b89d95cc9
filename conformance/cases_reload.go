//go:build linux

package conformance

import "slices"

// Cases for reloads (CLASSIC-6.11, CLASSIC-9.4/2), for daemons whose adapter
// names a reload signal.
func reloadCases() []*Case {
	return []*Case{
		{ID: "6.11/reload-keeps-doors", Requirement: "CLASSIC-6.11", Level: "MUST NOT", Target: TargetDaemon,
			Description: "a door opened before a reload still admits its connection after it",
			Run: func(e *Env) error {
				if err := e.knockSettle(e.Topo.Client, knockFor(portA)); err != nil {
					return err
				}
				if err := e.ReloadDaemon(e.model); err != nil {
					return err
				}
				if err := e.expectOpen(e.Topo.Client, portA, "door opened before the reload"); err != nil {
					return err
				}
				return e.control(portB)
			}},
		{ID: "9.4/broken-reload-keeps-list", Requirement: "CLASSIC-9.4/2", Level: "MUST", Target: TargetDaemon,
			Description: "a reload with a broken guest list leaves the old one in force, whole: old guests get in, a guest new in the broken list does not",
			Run: func(e *Env) error {
				m := e.model
				m.Guests = slices.Clone(m.Guests)
				nets := m.Guests[0].Networks
				m.Guests = append(m.Guests,
					Guest{Name: "dave", Secret: "d4veSecret", Ports: []int{portA}, Networks: nets},
					// No address: a record CLASSIC-9.2 forbids.
					Guest{Name: "carol", Secret: "c4rolSecret", Ports: []int{portA}})
				if err := e.ReloadDaemon(m); err != nil {
					return err
				}
				if !e.DaemonAlive() {
					return mismatch("daemon still running after a broken reload", "it exited")
				}
				// rejected ends with alice's control knock: the old list works.
				return e.rejected(e.Topo.Client, classicPayload(portA, "dave", randomTag(), "d4veSecret"), portA,
					"guest added by the broken list")
			}},
	}
}
