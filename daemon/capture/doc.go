// Package capture receives knock candidates for the doorman daemon: UDP
// datagrams to the knock port and, for door tracking, TCP SYNs. It is pure
// Go on Linux (AF_PACKET sockets and classic BPF via golang.org/x/sys/unix
// and golang.org/x/net/bpf); other systems get stubs whose Open fails.
//
// # Modes
//
// ModeNetwork (the default) uses an AF_PACKET SOCK_DGRAM socket: the
// kernel removes the link-layer header and reports the network protocol,
// so every frame starts with its IP header whatever the device. There is
// no link header to guess, which fixes the original's "silent doorman":
// Doorman 0.81 skipped a link header whose length it guessed from a small
// table, and on PPPoE, 802.1Q-tagged or cooked links it guessed wrong and
// ignored every knock without a word.
//
// ModeRaw uses an AF_PACKET SOCK_RAW socket and skips Config.LinkHeaderLen
// bytes, or a length guessed from the device's ARPHRD type when that is
// negative (the original's link-header-length). It exists for
// compatibility and diagnosis; a wrong length makes the kernel filter
// miss every knock. With Config.HexDump set, ModeRaw instead filters on the
// network header the kernel knows (SKF_NET_OFF), so the dump shows the
// knocks even when the length is wrong, and Read reports them as
// ErrTruncated or the like: that dump is how to find the right length.
//
// ModeSocket binds a plain UDP socket to the knock port (dual-stack IPv6,
// SO_BINDTODEVICE unless the interface is "any") and learns each
// datagram's destination from IPV6_PKTINFO / IP_PKTINFO. It needs no
// CAP_NET_RAW, but the kernel reassembles fragments and hides IP options
// (so ErrFragment and ErrIPOptions are never reported), a closed-port
// firewall that drops the knock before the socket also hides it, and it
// cannot see TCP SYNs: Config.SYN is refused, and door tracking must rely
// on the firewall (e.g. conntrack) or sock_diag.
//
// # Link types
//
//   - Ethernet (physical, veth, macvlan, bridge): ModeRaw header 14.
//   - 802.1Q-tagged frames: the kernel moves the tag into the skb before
//     packet sockets see the frame (skb_vlan_untag), so ModeNetwork sees
//     plain IP and ModeRaw still sees a 14-byte header. libpcap puts the
//     tag back from PACKET_AUXDATA, which is why the original needed
//     link-header-length 18 for tagged knocks (and then missed untagged
//     ones); this package does not reinsert it, and the hex dump says
//     "802.1Q vlan N tag removed by the kernel". Double-tagged (QinQ)
//     frames keep the inner tag in the data: use ModeNetwork.
//   - Loopback: Ethernet-like, header 14; every packet passes the packet
//     tap twice (outgoing and incoming): outgoing frames are dropped by
//     PACKET_IGNORE_OUTGOING, by the filter and by Read.
//   - tun (ARPHRD_NONE), raw IP, ipip/sit tunnels and PPP: no link header
//     (0). PPP over Ethernet: capture on the ppp device, not on the
//     Ethernet device carrying the sessions.
//   - "any": all devices of the network namespace; ModeNetwork only, as
//     their link headers differ. The destination check then accepts any
//     address of the namespace.
//
// # Filtering
//
// A classic BPF program is attached before the socket is bound (the
// socket is created with protocol 0, so nothing is queued before bind,
// and it is drained anyway). It passes UDP to the knock port over IPv4
// (also with IP options) and IPv6 (also behind one hop-by-hop, routing or
// destination-options header), IPv4 non-first fragments and IPv6 UDP
// fragments (their port cannot be seen, and the daemon counts them), and
// with Config.SYN TCP segments with SYN set and ACK clear. Read decodes
// what passes and reports drops by reason with sentinel errors, and checks
// the destination against the device's own addresses, which netlink
// notifications (and a periodic refresh) keep current.
//
// Read does not allocate per packet: it receives with recvmsg into buffers
// owned by the Conn through the runtime poller, which also lets Close
// unblock it.
package capture
