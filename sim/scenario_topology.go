//go:build linux

package sim

import (
	"context"
	"fmt"

	"github.com/doorman-project/doorman/internal/netsim"
)

// scenHosts is the scenarios' topology: hosts on one LAN with the server.
type scenHosts struct {
	lan    *netsim.LAN
	server *netsim.Host
	others map[string]*netsim.Host
}

// lanWith builds a LAN "lan" holding a server and the named hosts, and
// starts doormand on the server, allowing knocks from the whole LAN.
func lanWith(ctx context.Context, r *Run, names ...string) (*scenHosts, *doorman, error) {
	t := &scenHosts{others: map[string]*netsim.Host{}}
	var err error
	if t.server, err = r.Net.AddHost("server"); err != nil {
		return nil, nil, err
	}
	hosts := []*netsim.Host{t.server}
	for _, name := range names {
		h, err := r.Net.AddHost(name)
		if err != nil {
			return nil, nil, err
		}
		t.others[name] = h
		hosts = append(hosts, h)
	}
	if t.lan, err = r.Net.LAN("lan", hosts...); err != nil {
		return nil, nil, err
	}
	for _, h := range hosts {
		r.Step("host %s at %s", h.Name(), h.Addr4())
	}
	end := t.lan.End(t.server)
	if end == nil {
		return nil, nil, fmt.Errorf("server has no LAN interface")
	}
	d, err := setupDoorman(ctx, r, t.server, end.Name, t.lan.Prefix4())
	if err != nil {
		return nil, nil, err
	}
	return t, d, nil
}
