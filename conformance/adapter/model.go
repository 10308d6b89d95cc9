//go:build linux

package adapter

import (
	"strconv"
	"strings"
)

// Guest is one guest of the generic model, rendered into the
// implementation's guest list by its adapter.
type Guest struct {
	Name     string
	Secret   string
	Ports    []int
	Networks []string // address/bits
}

// PortList returns the ports separated by single spaces.
func (g Guest) PortList() string {
	s := make([]string, len(g.Ports))
	for i, p := range g.Ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, " ")
}

// NetworkList returns the networks separated by single spaces.
func (g Guest) NetworkList() string { return strings.Join(g.Networks, " ") }

// Model is what a daemon adapter's templates are rendered from. The
// adapter contract (conformance/README.md) documents every field; a new
// field must be added there too.
type Model struct {
	Guests     []Guest
	KnockPort  int
	WaitFor    int // seconds
	ConnDelay1 int // microseconds (0.81's unit for connection-delay-1)
	ConnDelay2 int // seconds
	// ReplayCapacity is the number of digests the replay store holds
	// (hash-archive-size); the suite fills it in 5.4/full-store-refuses.
	ReplayCapacity int
	// ReplayFile is where the implementation keeps its replay store
	// (hash-archive). 5.6/import-0.81-archive writes a 0.81 archive there
	// before the daemon starts.
	ReplayFile string
	// EventsFile is a path the adapter may give the daemon for its event
	// stream (see the adapter key events).
	EventsFile  string
	Interface   string
	ServerAddr  string // IPv4 address of Interface
	ServerAddr6 string // IPv6 address of Interface
	WorkDir     string
}
