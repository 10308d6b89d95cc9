//go:build linux

package conformance

// Cases for section 9 that show on the wire: what a guest list entry
// admits. (Reload behaviour is in cases_reload.go.)
func guestListCases() []*Case {
	return []*Case{
		{ID: "9.2/address-host-bits", Requirement: "CLASSIC-9.2", Level: "MUST", Target: TargetDaemon,
			Description: "an address entry with host bits set beyond its prefix (the LAN's /24 written with host part .77) stands for its network: a guest with it knocks from the first client",
			Run: func(e *Env) error {
				if err := e.knockSettle(e.Topo.Client, classicPayload(portB, groupHostBits, randomTag(), secretA)); err != nil {
					return err
				}
				return e.expectOpen(e.Topo.Client, portB, "guest "+groupHostBits+" with the entry "+hostBitsNet(e.Topo))
			}},
	}
}
