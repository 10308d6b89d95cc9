// Package netsim builds small virtual networks out of Linux network
// namespaces. It is the one namespace library of doorman's in-repo tests:
// the kernel tests of daemon/firewall and knocker, doormand's end-to-end
// tests, the scenarios of package sim and the conformance suite build their
// hosts, links and LANs with it, and run code inside a host with
// [Host.Do] (sockets, raw packets, firewall backends) or [Host.Command]
// (programs such as nft, iptables or doormand). It knows nothing of doorman
// itself; internal/doormandtest starts doormand on a netsim host.
//
// A [Net] is one simulation run. Every host is a named network namespace
// "<runid>-<host>" (visible to `ip netns`), where the run id is the
// configured prefix (default "dmsim"), a dash and eight random hex digits.
// Nothing is ever created in the root namespace: veth pairs are created with
// their ends directly in the hosts' namespaces, bridges live in hidden switch
// namespaces, and tun/tap devices are opened from a thread switched into the
// host. Deleting the namespaces therefore deletes everything, which is what
// [Net.Close] does (after stopping relays, recorders and commands) and what
// [Sweep] does for runs whose owning process died.
//
// Addresses come only from the benchmarking ranges 198.18.0.0/15 and
// 2001:db8::/32: each link or LAN gets its own /24 and /64
// (198.18.<i>.0/24 and 2001:db8:0:<i>::/64) and members get .1, .2, … in
// the order they join. Interfaces are named eth0, eth1, … in each host (tun0,
// … for [Net.TunLink]) unless the caller chooses a name with [LAN.AttachAs]
// or [LinkOptions] NameA/NameB, for programs whose configuration names one.
//
// A two-host topology, the simplest one:
//
//	+--------+ eth0   198.18.1.0/24    eth0 +--------+
//	| client |---------------------------------| server |
//	+--------+ .1    2001:db8:0:1::/64     .2 +--------+
//
// A NAT topology built with [Net.LAN] and [Net.Router]:
//
//	 inside LAN 198.18.2.0/24                        198.18.1.0/24
//	+------+                                +--------+           +---------+
//	| h1   |--+        (bridge in a  )   +--| router |-----------| outside |
//	+------+  +--[sw]  (hidden switch)---+  +--------+ masquerade+---------+
//	| h2   |--+        (namespace    )
//	+------+
//
// Code that follows interfaces (a capture bound to a device name, an
// address watcher) is tested by changing them after they were built:
// [LinkEnd.SetUp] takes an interface down and up, [Host.AddAddr] and
// [Host.DelAddr] add and remove addresses, [Link.Delete] and
// [Link.Recreate] unplug a veth link and plug in a new one under the same
// names.
//
// # Stand-ins for what this kernel cannot do
//
// The kernels doorman's CI runs on cannot create vlan, ipip, gre, sit,
// wireguard, dummy, bond or vrf links and have no netem qdisc. The package
// offers these substitutes:
//
//   - VLAN → tagged-frame injection. [LinkEnd.InjectTagged] writes an 802.1Q
//     tagged Ethernet frame with an AF_PACKET socket onto a host's link, so a
//     receiver (a capture, the daemon's AF_PACKET listener) sees a tagged frame
//     arriving on the parent interface. It does not give a real VLAN
//     sub-interface with its own address, routing or replies; the kernel drops
//     such frames after capture taps have seen them.
//   - WireGuard/ipip/gre tunnels → a raw-IP link. [Net.TunLink] puts a tun
//     device in each host and relays the IP packets in userspace, so the hosts
//     see an interface without Ethernet headers and with point-to-point
//     addresses, like a tunnel interface. There is no encryption or outer
//     header.
//   - netem → a userspace relay plus nftables. [LinkOptions] with Delay,
//     Jitter, Duplicate or Reorder builds a link from two tap devices whose
//     frames a pair of goroutines copy with those impairments and a bounded
//     queue. Loss on an ordinary veth link is an nftables rule
//     ("numgen random mod 100 < N drop") in a table of the simulator's own in
//     the hosts' namespaces; on relayed links the relay drops instead.
//
// # Lifetime
//
// [New] records the run in /run/<prefix>/<runid>.pid and holds an flock on
// that file for as long as the run lives, so [Sweep] can tell live runs from
// crashed ones without trusting pid numbers. Tests should always register
// Close with t.Cleanup.
//
// The package is Linux only; on other systems it compiles to nothing, so
// code using it needs a linux build constraint too.
package netsim
