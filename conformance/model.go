//go:build linux

package conformance

import (
	"net/netip"
	"path/filepath"
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

	// keys holds the private keys behind the public ones above, for the
	// cases to knock with.
	keys *modernKeys
}

// modernKeys are the key pairs of a model: the doorman's, its modern
// guests', another doorman's and a stranger's (a key in no guest entry).
type modernKeys struct {
	doorman, other, stranger keyPair
	guests                   map[string]keyPair
}

// withDoorman returns a copy of m whose doorman has the key pair k, with
// the text fields to match (a reload to a new key).
func (m Model) withDoorman(k keyPair) Model {
	keys := *m.keys
	keys.doorman = k
	m.keys = &keys
	m.PrivateKey, m.PublicKey = keyText(k.priv), keyText(k.pub)
	return m
}

// Ports of the model: the guest "alice" may open portA, portB and the
// probePorts from the two clients; portOther belongs to another guest; portMax is the 32-char
// guest's port from the vectors; portMin belongs to the guest whose name
// uses every special character.
const (
	portA     = 2222
	portB     = 2223
	portOther = 3333
	portMax   = 65535
	portMin   = 1
	knockPort = 1001
	secretA   = "s3cretKnock"
	group32   = "abcdefghijklmnopqrstuvwxyz012345"
	// groupSpecials is the group of the "group-all-specials" vector: every
	// character of the name alphabet that is not a letter or digit.
	groupSpecials = `g!@$%^&*()_-+=|\[]{};:'"<>,?/`
	groupHostBits = "hostbits"
	// Modern guests: carol and dave may open what alice may, from where
	// alice may; a reload removes dave, and a burst takes turns between
	// them (the time of the last knock is per guest).
	modernCarol = "carol"
	modernDave  = "dave"
)

// probePorts are more ports alice may open, one per datagram a case
// proves was not considered, so that their checks run at once.
var probePorts = func() []int {
	ps := make([]int, 24)
	for i := range ps {
		ps[i] = 2230 + i
	}
	return ps
}()

// secret255 is a secret of the maximum length (CLASSIC-9.3).
var secret255 = strings.Repeat(`S3cr!@$%^&*()_-+=|\[]{};:'"<>,?/`, 8)[:255]

// Timing of the model: short so that door lifecycle cases finish quickly.
const (
	waitForSec     = 2
	connDelay1Usec = 500000 // the 0.81 default
	connDelay2Sec  = 1
	// replayCapacity is the smallest capacity CLASSIC-8.4 allows.
	replayCapacity = 1000
	// The modern time window and rate limit: not the defaults (60 s, 20
	// a second, a burst of 5), so that a case can tell they are honoured
	// (MODERN-12.21), and generous enough for the cases' own knocks.
	modernWindowSec = 20
	modernRate      = 40
	modernBurst     = 10
)

func (t *Topology) model(workDir string) Model {
	// Both families of both clients (CLASSIC-2.7); the foreign host is
	// outside in both.
	nets := []string{t.Client.Addr.String() + "/32", t.Client2.Addr.String() + "/32",
		t.Client.Addr6.String() + "/128", t.Client2.Addr6.String() + "/128"}
	keys := &modernKeys{doorman: newKeyPair(), other: newKeyPair(), stranger: newKeyPair(),
		guests: map[string]keyPair{modernCarol: newKeyPair(), modernDave: newKeyPair()}}
	return Model{
		Guests: []Guest{
			{Name: "alice", Secret: secretA, Ports: append([]int{portA, portB}, probePorts...), Networks: nets},
			{Name: "bob", Secret: "b0bsSecret", Ports: []int{portOther}, Networks: nets},
			{Name: group32, Secret: secretA, Ports: []int{portMax}, Networks: nets},
			{Name: groupSpecials, Secret: secret255, Ports: []int{portMin}, Networks: nets},
			// Host bits set beyond the prefix: the entry means the network
			// (CLASSIC-9.2), which holds the first client.
			{Name: groupHostBits, Secret: secretA, Ports: []int{portB}, Networks: []string{hostBitsNet(t)}},
		},
		KnockPort: knockPort, WaitFor: waitForSec, ConnDelay1: connDelay1Usec, ConnDelay2: connDelay2Sec,
		ReplayCapacity: replayCapacity,
		ReplayFile:     filepath.Join(workDir, "replay"),
		EventsFile:     filepath.Join(workDir, "events.jsonl"),
		Interface:      IfName, ServerAddr: t.Server.Addr.String(), ServerAddr6: t.Server.Addr6.String(),
		WorkDir: workDir,

		PrivateKey: keyText(keys.doorman.priv), PublicKey: keyText(keys.doorman.pub),
		PrivateKeyFile: filepath.Join(workDir, "doorman.key"),
		ModernGuests: []ModernGuest{
			{Name: modernCarol, PublicKey: keyText(keys.guests[modernCarol].pub), Ports: append([]int{portA, portB}, probePorts...), Networks: nets},
			{Name: modernDave, PublicKey: keyText(keys.guests[modernDave].pub), Ports: append([]int{portA, portB}, probePorts...), Networks: nets},
		},
		ModernWindow: modernWindowSec, ModernRate: modernRate, ModernBurst: modernBurst,
		keys: keys,
	}
}

// hostBitsNet is the server's /24 written with the host part .77: it
// contains both clients and the foreign host.
func hostBitsNet(t *Topology) string {
	if !t.Server.Addr.Is4() {
		return "198.18.0.77/24"
	}
	a := t.Server.Addr.As4()
	a[3] = 77
	return netip.AddrFrom4(a).String() + "/24"
}

func serverPorts() []int {
	return append([]int{portA, portB, portOther, portMax, portMin}, probePorts...)
}
