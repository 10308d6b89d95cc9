//go:build linux

package sim

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/doorman-project/doorman/internal/netsim"
)

// replayHosts is the replay scenario's topology: everyone on one LAN whose
// bridge floods like a hub, and a guest list that allows client and
// client2 but not foreign.
type replayHosts struct {
	lan                                       *netsim.LAN
	server, client, client2, foreign, sniffer *netsim.Host
	allowed                                   netip.Prefix
}

// replayLAN builds the replay topology and starts doormand on the server.
func replayLAN(ctx context.Context, r *Run) (*replayHosts, *doorman, error) {
	t := &replayHosts{}
	hosts := make([]*netsim.Host, 0, 5)
	for _, p := range []struct {
		name string
		h    **netsim.Host
	}{{"server", &t.server}, {"client", &t.client}, {"client2", &t.client2}, {"foreign", &t.foreign}, {"sniffer", &t.sniffer}} {
		h, err := r.Net.AddHost(p.name)
		if err != nil {
			return nil, nil, err
		}
		*p.h = h
		hosts = append(hosts, h)
	}
	var err error
	if t.lan, err = r.Net.LAN("lan", hosts...); err != nil {
		return nil, nil, err
	}
	// A bridge sends unicast only to the port it learned the MAC on; the
	// sniffer must see client->server frames as on a shared medium.
	if err := t.lan.SetHub(); err != nil {
		return nil, nil, err
	}
	for _, h := range hosts {
		r.Step("host %s at %s", h.Name(), h.Addr4())
	}
	r.Step("LAN %s bridge set to flood every frame to every port (hub)", t.lan.Prefix4())
	// Members get consecutive addresses: server .1, client .2, client2 .3,
	// foreign .4, so a /30 holds both clients and leaves foreign out.
	t.allowed = netip.PrefixFrom(t.client2.Addr4(), 30).Masked()
	if !t.allowed.Contains(t.client.Addr4()) || !t.allowed.Contains(t.client2.Addr4()) || t.allowed.Contains(t.foreign.Addr4()) {
		return nil, nil, fmt.Errorf("replay topology: %v does not separate clients %s, %s from foreign %s",
			t.allowed, t.client.Addr4(), t.client2.Addr4(), t.foreign.Addr4())
	}
	end := t.lan.End(t.server)
	if end == nil {
		return nil, nil, errors.New("server has no LAN interface")
	}
	d, err := setupDoorman(ctx, r, t.server, end.Name, t.allowed)
	if err != nil {
		return nil, nil, err
	}
	return t, d, nil
}
