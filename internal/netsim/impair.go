//go:build linux

package netsim

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// nftTable is the table the simulator owns in each host's namespace. Hosts
// are the simulator's own namespaces, so a fixed name cannot collide with
// anyone else's rules.
const nftTable = "dmsim"

// SetLoss drops percent (0-100) of the packets arriving at either end.
// On relayed links the relay drops frames; on veth links it is an nftables
// rule in each host. 0 removes the loss.
func (l *Link) SetLoss(percent int) error {
	return errors.Join(l.A.SetLoss(percent), l.B.SetLoss(percent))
}

// SetLoss drops percent (0-100) of the packets arriving at this end; 0
// removes the loss. On a relayed link the relay drops whole frames. Otherwise
// an nftables chain "loss-<ifname>" (prerouting, priority raw) in table
// inet dmsim of the host drops IP packets with
// "iifname <ifname> numgen random mod 100 < percent drop"; ARP is not affected.
func (e *LinkEnd) SetLoss(percent int) error {
	percent = clampPct(percent)
	if e.relay != nil {
		e.relay.setLoss(e.toMe, percent)
		return nil
	}
	c, err := e.Host.nftConn()
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: nftTable})
	ch := c.AddChain(&nftables.Chain{
		Name: "loss-" + e.Name, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw,
	})
	c.FlushChain(ch)
	if percent > 0 {
		exprs := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifnameData(e.Name)},
		}
		if percent < 100 {
			exprs = append(exprs,
				&expr.Numgen{Register: 1, Modulus: 100, Type: unix.NFT_NG_RANDOM},
				// cmp compares bytes, so the host-order number is turned
				// big-endian first, as nft itself does for "<".
				&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
				&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binaryutil.BigEndian.PutUint32(uint32(percent))},
			)
		}
		exprs = append(exprs, &expr.Verdict{Kind: expr.VerdictDrop})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("netsim: loss %d%% on %s in %s: %w", percent, e.Name, e.Host.name, err)
	}
	return nil
}

// nftConn returns an nftables connection to the host's namespace.
func (h *Host) nftConn() (*nftables.Conn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.handle)))
	if err != nil {
		return nil, fmt.Errorf("netsim: nftables in %s: %w", h.name, err)
	}
	return c, nil
}

// ifnameData is an interface name as nftables compares it: IFNAMSIZ bytes,
// NUL padded.
func ifnameData(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}
