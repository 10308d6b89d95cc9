//go:build !linux

package firewall

// Blocker is a chain of the host's own firewall that drops what a door
// admits (Linux only).
type Blocker struct {
	Where, Why, Fix string
}

func (b Blocker) String() string { return b.Where + ": " + b.Why + "; add: " + b.Fix }

// InspectInput finds nothing where there is no nftables.
func InspectInput(uint32, string) ([]Blocker, error) { return nil, ErrUnsupported }
