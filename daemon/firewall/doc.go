// Package firewall holds the firewall backends of the doorman daemon: the
// code that puts doors in the kernel and takes them out.
//
// A Door is what one accepted knock may let through: TCP from one client
// address to one local address and port. The daemon hands each door, as a
// whole value, to Apply at every state change; the backend works out what
// to add or remove:
//
//	closed --Apply--> armed --SYN (kernel)--> claimed --Apply--> narrow --Apply--> closed
//
// An armed door is claimed by the kernel, not by the daemon: of SYNs racing
// for it exactly one wins, nothing but a SYN can win, and the backend
// reports the winner as a Claim (CLASSIC-6.2). That is how the daemon learns
// the source port the kernel admitted; it never guesses from a capture. An
// armed door that nobody claims expires in the kernel after waitfor, even
// if the daemon is gone.
//
// Every backend has the methods the daemon declares, where it consumes
// them, as daemon.Firewall:
//
//	Start(ctx, Notify) error           removes what an earlier run left, then gets ready
//	Apply(ctx, []Door) []error         brings each door to its State; one error per door
//	Close(ctx) error                   removes every door and all the backend added; idempotent
//
// and Packets, which counts the packets a claimed door let through, so the
// daemon can tell a connection too short to be seen from a SYN nobody
// followed up (a blind spoof).
// While it runs, a backend reports through Notify: Claims, and Faults it
// found or repaired on its own (a table an admin's firewall reload removed,
// a rule a script could not remove). Errors of Apply are *DoorError values
// naming the backend and the door; the causes (ErrTooManyDoors,
// ErrTransition, ErrInvalidRule, *ScriptError, ...) are reachable with
// errors.Is and errors.As. All backends are safe for concurrent use.
//
// # The backends
//
// NFTables, the default, is the mechanism the others build on: doors are
// elements of sets in doorman's own "inet" table, acted on by a few fixed
// rules made once at Start (its type documentation shows the table and
// explains the design). Its rules do not accept, because an accept in one
// table does not override a drop in another: they mark every packet a door
// admits (NFTConfig.Mark, default 0x00100000), and the host's own firewall
// accepts marked packets with ONE line the admin adds once, before its
// drops:
//
//	# native nftables, in the input chain of the admin's own table (e.g. table inet filter):
//	meta mark & 0x00100000 == 0x00100000 accept
//
// or, on a host whose firewall does not close the ports itself,
// NFTConfig.Protect makes the table close them.
//
// IPTables, for hosts whose firewall is iptables (or iptables-nft), keeps
// the doors in that same nftables table and adds an iptables chain DOORMAN,
// jumped to from the top of INPUT, that accepts the marked packets: the
// admin adds nothing.
//
// Script runs the firewall-add and firewall-del scripts of Doorman 0.81
// unchanged (section 7 of the spec), behind a guard in doorman's table that
// lets the kernel pick the one SYN a door admits and refuses the others,
// however slowly the scripts run. A journal file lets the next start remove
// what a killed daemon's scripts added; a rule a script may have left (a
// hang, garbage output, a failed delete) is blocked in the guard and its
// removal retried until it is gone.
//
// Fake is an in-memory backend for the daemon's unit tests; it lets a test
// play the kernel by reporting claims.
//
// # Network namespaces
//
// A backend works in the network namespace of the thread that called
// Start: its netlink sockets are opened there, and the programs it runs
// later (iptables, scripts) run there. A daemon never switches namespaces
// (that would need CAP_SYS_ADMIN); only tests start backends from threads
// switched into namespaces of their own.
package firewall
