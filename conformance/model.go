//go:build linux

package conformance

import (
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/doorman-project/doorman/conformance/adapter"
)

// Guest, ModernGuest and Model are the adapter package's: the suite
// renders its adapters from them.
type (
	Guest       = adapter.Guest
	ModernGuest = adapter.ModernGuest
	Model       = adapter.Model
)

// modernKeys are the key pairs of a model: the doorman's, its modern
// guests', another doorman's and a stranger's (a key in no guest entry).
type modernKeys struct {
	doorman, other, stranger keyPair
	guests                   map[string]keyPair
}

// keysOf returns the key pairs of m.
func keysOf(m Model) *modernKeys {
	k, _ := m.Suite.(*modernKeys)
	return k
}

// withDoorman returns a copy of m whose doorman has the key pair k, with
// the text fields to match (a reload to a new key).
func withDoorman(m Model, k keyPair) Model {
	keys := *keysOf(m)
	keys.doorman = k
	m.Suite = &keys
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
		Suite: keys,
	}
}

// hostBitsNet is the server's /24 written with the host part .77: it
// contains both clients and the foreign host.
func hostBitsNet(t *Topology) string {
	if !t.Server.Addr.Is4() {
		return "198.18.1.77/24"
	}
	a := t.Server.Addr.As4()
	a[3] = 77
	return netip.AddrFrom4(a).String() + "/24"
}

func serverPorts() []int {
	return append([]int{portA, portB, portOther, portMax, portMin}, probePorts...)
}
