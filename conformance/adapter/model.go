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
func (g Guest) PortList() string { return portList(g.Ports) }

// NetworkList returns the networks separated by single spaces.
func (g Guest) NetworkList() string { return strings.Join(g.Networks, " ") }

// ModernGuest is a guest of the modern protocol (spec section 12): a
// public key instead of a secret (MODERN-12.20).
type ModernGuest struct {
	Name      string
	PublicKey string // the guest's X25519 public key in text form (MODERN-12.2)
	Ports     []int
	Networks  []string // address/bits
}

// PortList returns the ports separated by single spaces.
func (g ModernGuest) PortList() string { return portList(g.Ports) }

// NetworkList returns the networks separated by single spaces.
func (g ModernGuest) NetworkList() string { return strings.Join(g.Networks, " ") }

func portList(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, " ")
}

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

	// The modern protocol (spec section 12). The suite makes the
	// doorman's key pair and writes PrivateKey, in the key file form of
	// MODERN-12.2, to PrivateKeyFile (mode 0600) before every fresh start
	// and every reload; an adapter names that file in its configuration
	// or renders PrivateKey in a form of its own.
	PrivateKey     string
	PublicKey      string
	PrivateKeyFile string
	// ModernGuests are the guests with public keys; an implementation
	// of the modern protocol renders them into the same guest list.
	ModernGuests []ModernGuest
	ModernWindow int  // seconds (modern-window, MODERN-12.14)
	ModernRate   int  // knocks a second per source (modern-rate, MODERN-12.12)
	ModernBurst  int  // knocks at once per source (modern-burst)
	ClassicOff   bool // refuse every classic knock (classic off, MODERN-12.20/3)

	// Suite is the conformance suite's own data about the model (the
	// private keys behind the public ones above, for its cases to knock
	// with); templates do not use it.
	Suite any
}
