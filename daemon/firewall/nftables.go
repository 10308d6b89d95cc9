package firewall

import (
	"log/slog"
	"sync"
)

// Defaults of NFTConfig.
const (
	DefaultNFTTable = "doorman"
	DefaultMark     = 0x00100000
)

// NFTConfig configures the nftables backend. The zero value means defaults.
type NFTConfig struct {
	// Table is the name of the backend's own "inet" table; default "doorman".
	// Start deletes any table of this name, so it must belong to doorman alone.
	Table string
	// Mark is the packet mark bit (or bits) set on every packet a door admits;
	// default 0x00100000. The admin's accept line tests the same bits.
	Mark uint32
	// Protect lists TCP ports that doorman itself closes (for hosts whose own
	// firewall does not drop them). Empty = rely on the admin's firewall.
	Protect []uint16
	// KnockPort, if non-zero, is the UDP knock port: the table drops
	// datagrams to it so the kernel never answers a knock (CLASSIC-4.2/2).
	KnockPort uint16
	// NetNS, if non-zero, is a file descriptor of the network namespace to
	// work in; 0 = the namespace of the calling thread.
	NetNS int
	// Logger receives the backend's logs; nil = slog.Default().
	Logger *slog.Logger
}

// NFTables is the default backend: it programs nftables over netlink (no nft
// binary) in its own "inet" table. See the package documentation for how its
// marks are meant to be combined with the host's firewall. Safe for
// concurrent use.
type NFTables struct {
	cfg NFTConfig
	log *slog.Logger

	// life is held for reading by Add and Delete, which may run
	// concurrently (each door's batches are independent; a Delete can take
	// the kernel ~10 ms and must not hold up other doors' Adds), and for
	// writing by Start and Close.
	life    sync.RWMutex
	started bool // guarded by life

	// The deletion batcher (routineDeleteBatches), guarded by life.
	delq             chan nftDelete
	delStop, delDone chan struct{}
	ns               int // namespace fd for batches when cfg.NetNS is 0

	addMu      sync.Mutex // serialises commits of Adds so handles can be predicted
	nextHandle uint64     // guarded by addMu

	mu          sync.Mutex // guards nextID, live and pendingAdds
	nextID      uint64
	live        ruleSet[nftEntry]
	pendingAdds []*nftAdd // queued for the next commit (see add)
}

// nftAdd is one queued Add and where its result goes.
type nftAdd struct {
	r    Rule
	id   uint64
	done chan error
}

// nftDelete is one queued deletion and where its result goes.
type nftDelete struct {
	e    nftEntry
	done chan error
}

// nftEntry is what Delete needs to remove one added rule.
type nftEntry struct {
	handle uint64 // kernel rule handle
	set    string // the door's dynamic set; "" for narrow rules
	tag    []byte // the rule's unique comment, to find it if handle is wrong
}

// NewNFTables returns an unstarted nftables backend.
func NewNFTables(cfg NFTConfig) *NFTables {
	if cfg.Table == "" {
		cfg.Table = DefaultNFTTable
	}
	if cfg.Mark == 0 {
		cfg.Mark = DefaultMark
	}
	cfg.Protect = append([]uint16(nil), cfg.Protect...)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &NFTables{cfg: cfg, log: log.With("backend", "nftables")}
}

// Mark returns the mark bits this backend sets on admitted packets.
func (n *NFTables) Mark() uint32 { return n.cfg.Mark }
