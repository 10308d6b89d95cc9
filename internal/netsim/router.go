//go:build linux

package netsim

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// Router creates a NAT router host called name between the LAN inside and
// the host outside:
//
//	inside members --[LAN]-- name ==[link]== outside
//
// The router gets a link to outside first (so its primary address is the
// outside one), then joins inside. Forwarding is on; nftables (table inet
// dmsim) masquerades IPv4 and IPv6 leaving through the outside interface and
// drops forwarded connections that start from the outside, as a home
// router would. Its default routes point at outside, and the default routes
// of every inside member, now and later, point at the router. The outside
// host gets no route to the inside: it only ever sees the router's address.
func (n *Net) Router(name string, inside *LAN, outside *Host) (*Host, error) {
	if inside == nil || inside.net != n || outside == nil || outside.net != n {
		return nil, errors.New("netsim: Router needs a LAN and a host of this network")
	}
	r, err := n.AddHost(name)
	if err != nil {
		return nil, err
	}
	up, err := n.Link(r, outside, LinkOptions{})
	if err != nil {
		return nil, err
	}
	in, err := inside.Attach(r)
	if err != nil {
		return nil, err
	}
	if err := r.SetForwarding(true); err != nil {
		return nil, err
	}
	if err := r.SetDefaultRoutes(up.B.Addr4, up.B.Addr6); err != nil {
		return nil, err
	}
	if err := r.installNAT(up.A.Name); err != nil {
		return nil, err
	}
	inside.mu.Lock()
	inside.gw4, inside.gw6 = in.Addr4, in.Addr6
	members := append([]*LinkEnd(nil), inside.ends...)
	inside.mu.Unlock()
	for _, e := range members {
		if e.Host == r {
			continue
		}
		if err := e.Host.SetDefaultRoutes(in.Addr4, in.Addr6); err != nil {
			return nil, err
		}
	}
	n.log.Debug("router", "router", name, "lan", inside.name, "outside", outside.name)
	return r, nil
}

// installNAT adds masquerading on out and a forward filter that only lets
// replies in through out.
func (h *Host) installNAT(out string) error {
	c, err := h.nftConn()
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: nftTable})
	post := c.AddChain(&nftables.Chain{
		Name: "nat-postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifnameData(out)},
		&expr.Masq{},
	}})
	fwd := c.AddChain(&nftables.Chain{
		Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifnameData(out)},
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{
			SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0),
		},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifnameData(out)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("netsim: NAT rules in %s: %w", h.name, err)
	}
	return nil
}
