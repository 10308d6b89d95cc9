//go:build linux

package conformance

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

// Model is what a daemon adapter's templates are rendered from.
type Model struct {
	Guests     []Guest
	KnockPort  int
	WaitFor    int // seconds
	ConnDelay2 int // seconds
	Interface  string
	ServerAddr string
	WorkDir    string
}

// Ports of the model: the guest "alice" may open portA and portB from the
// two clients; portOther belongs to another guest; portMax is the 32-char
// guest's port from the vectors.
const (
	portA     = 2222
	portB     = 2223
	portOther = 3333
	portMax   = 65535
	knockPort = 1001
	secretA   = "s3cretKnock"
	group32   = "abcdefghijklmnopqrstuvwxyz012345"
)

// waitFor and connDelay2 are short so that door lifecycle cases finish
// quickly.
const (
	waitForSec    = 2
	connDelay2Sec = 1
)

func (t *Topology) model(workDir string) Model {
	// Both families of both clients (CLASSIC-2.7); the foreign host is
	// outside in both.
	nets := []string{t.Client.Addr.String() + "/32", t.Client2.Addr.String() + "/32",
		t.Client.Addr6.String() + "/128", t.Client2.Addr6.String() + "/128"}
	return Model{
		Guests: []Guest{
			{Name: "alice", Secret: secretA, Ports: []int{portA, portB}, Networks: nets},
			{Name: "bob", Secret: "b0bsSecret", Ports: []int{portOther}, Networks: nets},
			{Name: group32, Secret: secretA, Ports: []int{portMax}, Networks: nets},
		},
		KnockPort: knockPort, WaitFor: waitForSec, ConnDelay2: connDelay2Sec,
		Interface: IfName, ServerAddr: t.Server.Addr.String(), WorkDir: workDir,
	}
}

func serverPorts() []int { return []int{portA, portB, portOther, portMax} }
