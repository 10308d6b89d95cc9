// Package config reads the daemon's two files, doormand.cf (ParseDaemon,
// LoadDaemon; spec section 8) and the guest list (ParseGuestList,
// LoadGuestList; spec section 9), and applies Doorman 0.81's ownership rules
// to them and to the firewall scripts (CheckOwner).
//
// Files written for Doorman 0.81 load unchanged. Where 0.81 was lax this
// package is stricter, and where it extends 0.81 the difference is listed
// here so that an administrator moving a configuration over can check it:
//
// doormand.cf
//   - Problems are reported with file, line, the offending text and the
//     rule, all of them at once (errors.Join of *Error). 0.81 ignored
//     unknown keywords silently; here they are Warnings, as is a keyword
//     given twice (the later value wins).
//   - '-' and '_' are equivalent in every keyword, not only in
//     connection_delay_1/2, and keywords are case-insensitive.
//   - A keyword with no value or with more than one value is an error
//     (except protect, which takes a list).
//   - A relative path is taken from the configuration file's directory
//     (0.81 took it from its working directory, which a service manager
//     sets to /), with a warning.
//   - Delays also accept Go durations ("1.5s", "250ms") besides 0.81's
//     whole seconds or microseconds, and are range-checked (waitfor 1s-1h,
//     connection-delay-1 1ms-1m, connection-delay-2 100ms-1h).
//   - hash-archive is optional (default /var/lib/doorman/replay);
//     hash-archive-size defaults to 1000000 (protocol.DefaultReplayCapacity),
//     is at most 100000000, and a size below 1000 is raised to 1000 with
//     a warning.
//   - loglevel defaults to INFO, not DEBUG. The syslog names map onto
//     log/slog levels: DEBUG, INFO, WARNING (or WARN) and ERROR are slog's
//     own; NOTICE is Info+2, CRIT Error+4, ALERT Error+8, EMERG Error+12.
//   - fail-limit and fail-delay are parsed and then ignored, as in 0.81,
//     with a warning.
//   - New keywords: firewall (nftables, iptables or script; script is the
//     default when firewall-add or firewall-del is given, else nftables),
//     capture (network, raw or socket; raw is the default when
//     link-header-length is given, else network), nft-table, door-mark,
//     nft-log-group, protect, iptables-chain, stats-interval and max-doors.
//     firewall script requires both scripts.
//   - Keywords of the modern protocol (spec MODERN-12.21): private-key (the
//     doorman's key file, default /etc/doorman/doormand.key; LoadPrivateKey
//     reads it), classic (on or off, default on), modern-window (1s-1h,
//     default 60 seconds), modern-rate and modern-burst (1-100000, defaults
//     20 and 5).
//
// guest list
//   - IPv6 addresses and prefixes are accepted; an IPv4-mapped IPv6
//     address is stored as IPv4. Prefix lengths are checked per family, and
//     host bits beyond the prefix draw a warning (the prefix is masked).
//   - Secrets may be up to 255 characters (0.81: 64), with a warning above
//     64 and below 8 characters.
//   - A host name is resolved once, at load time, and stands for every
//     address it resolves to; failure to resolve is an error. Strings that
//     are neither a number, a service name, an address nor a well-formed
//     host name are errors, never sent to DNS.
//   - A group defined twice, a record without a port or without an
//     address, and a continuation line before the first record are errors.
//     An empty guest list loads with a warning.
//   - Service names come from /etc/services, with a built-in table of
//     common services (protocol.WellKnownPort) for systems that lack it.
//
// A Daemon has two parts: Reloadable, the settings a SIGHUP applies to a
// running doormand (waitfor, the connection delays, guestlist, loglevel,
// stats-interval, max-doors, private-key, classic, modern-window,
// modern-rate, modern-burst), and Restart, every other keyword, which takes
// effect on restart. Each field is
// tagged with its keyword; Restart.Changed compares two Restart values and
// names the keywords that differ.
//
// Defaults are defined once: the firewall's (nft-table, door-mark,
// iptables-chain, nft-log-group) come from daemon/firewall, the replay
// store's from protocol, the capture modes are daemon/capture's.
//
// Requirement IDs such as CLASSIC-9.2 in comments and tests point into
// spec/doorman.md.
package config
