package firewall

import "log/slog"

// DefaultIPTChain is the default name of the iptables backend's chain.
const DefaultIPTChain = "DOORMAN"

// IPTConfig configures the iptables backend. The zero value means defaults.
type IPTConfig struct {
	// Chain is the backend's own chain in table filter (iptables and
	// ip6tables), jumped to from INPUT position 1; default "DOORMAN". Start
	// deletes any chain of this name, so it must belong to doorman alone.
	Chain string
	// Doors configures the nftables table that holds the doors and marks
	// their packets (see NFTables); its Mark is the mark the chain accepts.
	Doors NFTConfig
	// Logger receives the backend's logs; nil = slog.Default().
	Logger *slog.Logger
}

func (c IPTConfig) withDefaults() IPTConfig {
	if c.Chain == "" {
		c.Chain = DefaultIPTChain
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Doors.Logger == nil {
		c.Doors.Logger = c.Logger
	}
	if c.Doors.Mark == 0 {
		c.Doors.Mark = DefaultMark
	}
	c.Logger = c.Logger.With("backend", iptBackend)
	return c
}

const iptBackend = "iptables"

// iptComment marks every rule the iptables backend adds.
const iptComment = "doorman"
