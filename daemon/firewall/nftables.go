package firewall

import (
	"log/slog"
	"sync"
	"time"
)

// Defaults of NFTConfig.
const (
	DefaultNFTTable = "doorman"
	DefaultMark     = 0x00100000
	// DefaultLogGroup is the netfilter log group on which the kernel
	// reports the SYNs that claim doors.
	DefaultLogGroup = 1001
	// DefaultMaxDoors bounds the doors held at once: each costs the kernel
	// one set element per stage and the daemon a few hundred bytes.
	DefaultMaxDoors = 65535
)

// NFTConfig configures the nftables backend. The zero value means defaults.
type NFTConfig struct {
	// Table is the name of the backend's own "inet" table; default
	// "doorman". Start deletes any table of this name, so it must belong to
	// doorman alone.
	Table string
	// Mark is the packet mark bit (or bits) set on every packet a door
	// admits; default 0x00100000. The admin's accept line tests the same
	// bits.
	Mark uint32
	// Protect lists TCP ports that doorman itself closes (for hosts whose
	// own firewall does not drop them). Empty = rely on the admin's firewall.
	Protect []uint16
	// KnockPort, if non-zero, is the UDP knock port. Datagrams to it are
	// dropped before the kernel could answer them (CLASSIC-4.2/2), and so
	// are fragments of them, before reassembly (CLASSIC-4.3).
	KnockPort uint16
	// KnockSocket says knocks are received on an ordinary UDP socket: the
	// knock port's datagrams are then marked (so the admin's mark line lets
	// them reach the socket) instead of dropped; fragments are still
	// dropped.
	KnockSocket bool
	// Guard makes the table refuse, besides marking the winner, every SYN
	// that races for an armed or claimed door. Needed when something other
	// than the mark lets door traffic in (the 0.81 firewall scripts).
	Guard bool
	// LogGroup is the netfilter log group the kernel reports claiming SYNs
	// on; 0 = DefaultLogGroup. One process per network namespace can read
	// a group.
	LogGroup uint16
	// MaxDoors bounds the doors held at once; 0 = DefaultMaxDoors. Apply
	// refuses to arm more with ErrTooManyDoors.
	MaxDoors int
	// Sweep is how often the backend checks that its table is intact and
	// reconciles its doors with the kernel's sets; 0 = one second.
	Sweep time.Duration
	// Logger receives the backend's logs; nil = slog.Default().
	Logger *slog.Logger
}

// NFTables is the door mechanism every backend builds on: doors are elements
// of sets in doorman's own "inet" table, and a handful of fixed rules, made
// once at Start, act on them:
//
//	table inet doorman {
//		set broad4  { type ipv4_addr . ipv4_addr . inet_service; flags timeout; }                  # armed doors
//		set pinned4 { type ipv4_addr . ipv4_addr . inet_service . inet_service; flags timeout; }   # armed, source port named
//		set claim4  { type ipv4_addr . ipv4_addr . inet_service; flags dynamic,timeout; }          # doors a SYN claimed
//		set narrow4 { type ipv4_addr . ipv4_addr . inet_service . inet_service; flags dynamic; }   # the claimed connections
//		(and the same four for IPv6)
//		chain doors {
//			type filter hook input priority mangle; policy accept;
//			ip saddr . ip daddr . tcp sport . tcp dport @narrow4 meta mark set meta mark | MARK accept
//			tcp flags & (syn|ack) == syn ip saddr . ip daddr . tcp dport @broad4
//				add @claim4 { ip saddr . ip daddr . tcp dport limit rate 1/week burst 1 packets }
//				add @narrow4 { ip saddr . ip daddr . tcp sport . tcp dport }
//				log group 1001 meta mark set meta mark | MARK accept
//			(the same for @pinned4 with the source port in the key, and for IPv6)
//			[Guard: tcp flags & (syn|ack) == syn ip saddr . ip daddr . tcp dport @broad4 drop]
//		}
//		chain silence { type filter hook prerouting priority -450; udp dport KNOCK drop }
//		[chain protect { type filter hook input priority filter; ... see below }]
//	}
//
// Arming a door adds one element, with the kernel's own timeout of waitfor,
// so an unclaimed door disappears by itself, whatever happens to the daemon.
// Claiming is done by the kernel in one rule, and only by a SYN: the claim
// set's element carries a token bucket holding one token that refills once
// a week, so of SYNs racing on several CPUs exactly one takes the token
// (the bucket is updated under a lock), and only that SYN's connection goes
// into the narrow set and is marked. The rule reports that SYN on a netfilter
// log group, which is how the daemon learns the source port the kernel
// admitted: it never guesses from what a capture saw. Every other packet of
// that connection matches the narrow set. Nothing is ever added or deleted
// but set elements, so a door costs the same whether 1 or 20,000 are open,
// and deleting many is one cheap batch (rules would make every commit
// rebuild the chain and wait for an RCU grace period).
//
// An accept in one nftables table does not override a drop in another, so
// the admin's own input chain accepts marked packets with one line (see the
// package documentation), or Protect makes this table close the listed ports
// itself.
//
// A background routine checks every Sweep that the table is still there and
// restores it, with every open door, if an admin's firewall reload removed
// it; it also reconciles the narrow sets with the doors (reporting a claim
// whose log message was lost, removing elements no door owns). Safe for
// concurrent use.
type NFTables struct {
	cfg NFTConfig
	log *slog.Logger

	// mu serialises every change of the table and guards the fields below;
	// it is held across netlink round trips (a fraction of a millisecond).
	mu      sync.Mutex
	started bool
	state   *nftState // OS-specific; nil before Start
	doors   map[uint64]*nftDoor
	armed   map[key]uint64 // the door (armed or claimed) that SYNs of a key may claim
	claimed map[key]uint64 // claim elements in the kernel, by the door that made them
	blocked map[key]Door   // keys in the guard's blocked set (see setBlocked)
	notify  Notify
}

// nftDoor is what the backend put in the kernel for one door.
type nftDoor struct {
	d          Door   // as last applied
	armed      bool   // an element in broad (pinPort 0) or pinned
	pinPort    uint16 // the source port an armed door was pinned to; 0 = any
	narrow     bool   // an element in narrow, for narrowPort
	narrowPort uint16
}

// NewNFTables returns an unstarted nftables backend.
func NewNFTables(cfg NFTConfig) *NFTables {
	if cfg.Table == "" {
		cfg.Table = DefaultNFTTable
	}
	if cfg.Mark == 0 {
		cfg.Mark = DefaultMark
	}
	if cfg.LogGroup == 0 {
		cfg.LogGroup = DefaultLogGroup
	}
	if cfg.MaxDoors <= 0 {
		cfg.MaxDoors = DefaultMaxDoors
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = time.Second
	}
	cfg.Protect = append([]uint16(nil), cfg.Protect...)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &NFTables{cfg: cfg, log: log.With("backend", nftBackend)}
}

const nftBackend = "nftables"

// Mark returns the mark bits this backend sets on admitted packets.
func (n *NFTables) Mark() uint32 { return n.cfg.Mark }
