//go:build linux

package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/doorman-project/doorman/conformance/adapter"
	"github.com/doorman-project/doorman/internal/netsim"
)

// Need is something a scenario needs from the kernel or from the daemon
// under test (Scenario.Needs). Every scenario needs network namespaces,
// veth pairs and Linux bridges; those are not listed.
type Need string

// Needs of the daemon under test.
const (
	// NeedDoormand: the scenario configures the built doormand itself
	// (capture keys, -X, SIGUSR1 counters); no adapter can stand in.
	NeedDoormand Need = "doormand"
	// NeedEvents: the scenario reads doormand's event stream throughout
	// (adapter key doormand_events).
	NeedEvents Need = "events"
)

// Needs of the kernel, probed in a namespace of their own.
const (
	// NeedNftables: nf_tables with the inet family in a network
	// namespace, for the server's admin firewall and doormand's doors.
	NeedNftables Need = "nftables"
	// NeedNftNAT: nftables NAT (masquerade) in a network namespace.
	NeedNftNAT Need = "nft-nat"
	// NeedTun: /dev/net/tun, for relayed (impaired) links and tun links.
	NeedTun Need = "tun"
	// NeedMacvlan: macvlan interfaces.
	NeedMacvlan Need = "macvlan"
	// NeedPacket: AF_PACKET sockets, to sniff and inject frames.
	NeedPacket Need = "af_packet"
)

// Description says what the need is, for `doorman-sim list` and the
// README.
func (n Need) Description() string {
	switch n {
	case NeedDoormand:
		return "the built doormand (its own configuration keys, -X, counters); not an --impl adapter"
	case NeedEvents:
		return "doormand's event stream from the daemon under test (adapter key doormand_events)"
	case NeedNftables:
		return "nf_tables with the inet family in network namespaces (CONFIG_NF_TABLES_INET)"
	case NeedNftNAT:
		return "nftables NAT (masquerade) in network namespaces (CONFIG_NFT_NAT, CONFIG_NFT_MASQ)"
	case NeedTun:
		return "/dev/net/tun (CONFIG_TUN)"
	case NeedMacvlan:
		return "macvlan interfaces (CONFIG_MACVLAN)"
	case NeedPacket:
		return "AF_PACKET sockets (CONFIG_PACKET)"
	}
	return string(n)
}

// implLacks returns why impl cannot serve a scenario with needs, or "".
// A nil impl is the built doormand, which has everything.
func implLacks(impl *adapter.Adapter, needs []Need) string {
	if impl == nil {
		return ""
	}
	for _, n := range needs {
		switch n {
		case NeedDoormand:
			return "the scenario configures the built doormand itself (its own keys, -X, counters); it does not run against an --impl adapter"
		case NeedEvents:
			if !impl.DoormandEvents {
				return fmt.Sprintf("the scenario reads doormand's event stream, which adapter %s does not declare (doormand_events)", impl.Name)
			}
		}
	}
	return ""
}

// Kernel probes, once each, what the kernel supports, in network
// namespaces of its own. The zero value is ready to use; it is safe for
// concurrent use.
type Kernel struct {
	// Prefix names the probe's namespaces; "" means "dmprobe".
	Prefix string

	mu     sync.Mutex
	probed map[Need]error
	base   error // network namespaces themselves
	done   bool
}

// Lacks returns why the kernel cannot serve needs ("" if it can),
// probing what was not probed yet. Namespaces, veth pairs and bridges are
// probed first: every scenario needs them.
func (k *Kernel) Lacks(ctx context.Context, needs []Need) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.done {
		k.probeAll(ctx)
	}
	if k.base != nil {
		first, _, _ := strings.Cut(k.base.Error(), "\n")
		return fmt.Sprintf("network namespaces, veth pairs and bridges do not work here (needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN; in a container, --privileged): %s", first)
	}
	for _, n := range needs {
		if err, ok := k.probed[n]; ok && err != nil {
			return fmt.Sprintf("the kernel lacks %s: %v", n.Description(), err)
		}
	}
	return ""
}

// probeAll builds a two-host network and tries each kernel need in it.
// Probing everything at once costs one network (a fraction of a second)
// and answers every later scenario.
func (k *Kernel) probeAll(ctx context.Context) {
	k.done = true
	k.probed = map[Need]error{}
	if os.Geteuid() != 0 {
		k.base = errors.New("not root")
		return
	}
	prefix := k.Prefix
	if prefix == "" {
		prefix = "dmprobe"
	}
	_, _ = netsim.Sweep(prefix)
	n, err := netsim.New(ctx, netsim.Options{Prefix: prefix})
	if err != nil {
		k.base = err
		return
	}
	defer n.Close()
	a, err := n.AddHost("a")
	if err != nil {
		k.base = err
		return
	}
	b, err := n.AddHost("b")
	if err != nil {
		k.base = err
		return
	}
	lan, err := n.LAN("lan", a, b)
	if err != nil {
		k.base = err
		return
	}
	nft := func(ruleset string) error {
		cmd := a.Command(ctx, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(ruleset)
		if out, err := cmd.CombinedOutput(); err != nil {
			first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
			return fmt.Errorf("nft: %w: %s", err, first)
		}
		return nil
	}
	k.probed[NeedNftables] = nft("table inet dmprobe {\n chain input {\n  type filter hook input priority 0; policy accept;\n }\n}\n")
	k.probed[NeedNftNAT] = nft("table inet dmprobenat {\n chain post {\n  type nat hook postrouting priority 100;\n  oifname \"lo\" masquerade\n }\n}\n")
	k.probed[NeedTun] = func() error {
		f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}()
	k.probed[NeedMacvlan] = func() error {
		_, err := n.MACVLAN(lan.End(b))
		return err
	}()
	k.probed[NeedPacket] = a.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("socket(AF_PACKET): %w", err)
		}
		return unix.Close(fd)
	})
}
