// Package firewall holds the firewall backends of the doorman daemon: the
// code that opens and closes doors.
//
// A door is a Rule: TCP from one client address to one local address and port.
// The daemon first adds the broad rule (any source port) and waits for the
// client's SYN; then it adds the narrow rule (that SYN's source port) and
// deletes the broad one; when the connection ends it deletes the narrow rule.
//
// Every backend has the same methods, which the daemon declares as the
// interface it consumes:
//
//	Start(ctx) error        first removes what a crashed earlier run left behind
//	Add(ctx, Rule) error    adds one rule atomically
//	Delete(ctx, Rule) error removes one rule added by Add (the same Rule value)
//	Close(ctx) error        removes every rule and the backend's table/chain; idempotent
//
// All are safe for concurrent use. Errors of Add and Delete are *RuleError
// values naming the backend and the rule; the sentinel errors (ErrInvalidRule,
// ErrUnknownRule, ErrNotStarted) and *ScriptError are reachable with
// errors.Is / errors.As. Adding an equal Rule twice holds two rules; each
// Delete removes one.
//
// # nftables (NFTables, the default)
//
// Programs nftables over netlink (no nft binary) in its own table, by default:
//
//	table inet doorman {
//		set door_1 { type inet_service; size 1; flags dynamic; }
//		chain input {
//			type filter hook input priority mangle; policy accept;
//			iifname "eth0" ip saddr 198.18.0.2 ip daddr 198.18.0.1 tcp dport 22 add @door_1 { tcp sport } meta mark set meta mark | 0x00100000 comment "doorman#1"
//			ip saddr 198.18.0.2 ip daddr 198.18.0.1 tcp sport 40000 tcp dport 22 meta mark set meta mark | 0x00100000 comment "doorman#2"
//		}
//	}
//
// Start deletes a leftover table of that name and creates a fresh one in one
// batch; each Add and Delete is one batch (the rule together with its set);
// Close deletes the table.
//
// The rules do not accept: an accept in one table does not override a drop in
// another (every base chain on the hook must accept), and a jump cannot cross
// tables. Instead every packet of an open door gets a mark bit (NFTConfig.Mark,
// default 0x00100000), and the host's own firewall accepts marked packets
// with ONE line that the admin adds once, before its drops:
//
//	# native nftables, in the input chain of the admin's own table (e.g. table inet filter):
//	meta mark & 0x00100000 == 0x00100000 accept
//
//	# iptables or iptables-nft host with -P INPUT DROP (and the same with ip6tables):
//	iptables -I INPUT -m mark --mark 0x00100000/0x00100000 -j ACCEPT
//
// A broad rule admits exactly one connection: its set holds at most one
// element, the source port of the first SYN. The kernel refuses to add a
// second element to a full set and the rule stops there, so a second SYN from
// another source port, even 1 ms later, is not marked; retransmissions and
// the rest of the first connection still match. (Doorman 0.81 let every
// connection in until its narrow rule landed, 20-60 ms later.)
//
// On a host whose own firewall does not close the protected ports,
// NFTConfig.Protect makes the table close them too, with a chain at priority
// filter that drops connection-opening packets (SYN without ACK) to those
// ports unless they carry the mark:
//
//	chain protect {
//		type filter hook input priority filter; policy accept;
//		tcp dport @protected tcp flags syn / syn,ack meta mark & 0x00100000 != 0x00100000 drop
//	}
//
// Other segments pass: without an admitted connection they find no socket and
// get a RST, as on a closed port. This needs no conntrack, so sessions open
// before doorman started, and door connections across a daemon restart,
// survive (see addProtect for why conntrack state was not used).
//
// # iptables (IPTables)
//
// Uses the iptables / ip6tables binaries (through go-iptables): a chain
// DOORMAN in table filter, jumped to from INPUT position 1, holding
//
//	-p tcp [-i IF] -s SRC -d DST -m tcp [--sport SPORT] --dport DPORT
//	[-m connlimit --connlimit-upto 1 --connlimit-mask 32|128] -m comment --comment doorman -j ACCEPT
//
// Its ACCEPT works because the rules live in the host's own INPUT chain.
// Broad rules carry connlimit when the kernel has xt_connlimit (Start probes
// it; IPTables.ConnLimit reports the outcome), which lets one connection per
// broad rule in. Without it, a broad rule admits every connection that starts
// before the narrow rule replaces it, like the original.
//
// # scripts (Script)
//
// Runs the firewall-add and firewall-del scripts of Doorman 0.81 unchanged:
//
//	script <interface> <src-ip> <src-port> <dst-ip> <dst-port>
//
// with src-port 0 for a broad rule and interface "any" when the rule names
// none (Rule.Iface "" is passed as "any"). The script prints one line: "0" for
// success, or "<errno> <level> <message>" with a syslog level: 0..3 is a
// failure (*ScriptError), 4..7 is logged as a warning and taken as success.
// Anything else (no output, garbage, a timeout) is an error naming the script,
// the rule and the output (ErrScriptOutput, context.DeadlineExceeded). The
// directory scripts/ has iptables-add and iptables-del (POSIX sh) that insert
// and delete "-I INPUT 1 -j ACCEPT -p tcp -i IF -s SRC [--sport SPORT] -d DST
// --dport DPORT", choosing ip6tables for IPv6 addresses.
//
// With ScriptConfig.Journal set, the backend appends "add <id> <args>" to the
// journal (synced) before the add script runs and "del <id>" after the delete
// script succeeded; Start runs the delete script for every rule still
// recorded and empties the journal, so a kill -9 leaves nothing behind after
// the next start. An add whose script failed without saying so (timeout,
// garbage) stays recorded and is deleted by Close or the next Start.
//
// # Fake
//
// An in-memory backend for unit tests of the daemon: it records the live rules
// and every call and can be told to fail the next call.
//
// # Network namespaces
//
// The nftables backend works in NFTConfig.NetNS if set, otherwise in the
// namespace of the calling thread; the iptables and script backends run their
// programs in the namespace of the calling thread.
package firewall
