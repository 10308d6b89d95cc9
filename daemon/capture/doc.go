// Package capture receives knock candidates for the doorman daemon: UDP
// datagrams to the knock port whose payload may be a knock. It is pure Go
// on Linux (AF_PACKET sockets with a TPACKET_V2 ring, classic BPF via
// golang.org/x/sys/unix and golang.org/x/net/bpf); other systems get stubs
// whose Open fails. It delivers no TCP segments: doors learn their SYN
// from the firewall.
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
// CAP_NET_RAW, but the kernel reassembles fragments (so ErrFragment is
// never reported), verifies checksums itself, and a closed-port firewall
// that drops the knock before the socket also hides it. The kernel filter
// below is attached to the UDP socket too.
//
// # Receive path
//
// ModeNetwork and ModeRaw receive through a memory-mapped TPACKET_V2 ring
// of 4 MiB (12288 frames of 336 bytes; 8192 of 512 in ModeRaw, for link
// headers up to 128 bytes). The kernel hands each frame to user space
// as soon as it has written it, so an idle knock is read within the time
// the kernel takes to wake the reader (about 0.1 ms here; a TPACKET_V3
// ring, which hands over blocks of frames only when a block is full or a
// retire timeout of at least 1 ms expires, kept it waiting about 0.75 ms).
// Read takes every frame that is ready before it waits again, without a
// system call per packet. It waits in poll(2) itself, outside the
// runtime's poller, so that frames handed over while it is busy wake
// nobody. Sleeping and waking up costs more than reading a hundred frames,
// so a wakeup pacer lets the reader sleep a few times in a row at once and
// after that at most once a millisecond: under a flood it wakes about a
// thousand times a second whatever the rate and reads what came meanwhile
// in one go (a knock during a flood waits up to a millisecond longer).
// Close wakes it through an eventfd. Read does not allocate: it copies the
// payload (at most a few hundred bytes) into a buffer of the Conn, so that
// the frame can be handed back, and the ring unmapped by Close, while the
// caller still looks at the last packet.
//
// # Filtering
//
// A classic BPF program is attached before the socket is bound (the
// socket is created with protocol 0, so nothing reaches the ring before
// bind). It is a prefilter: it passes a frame only when it is addressed to
// this host (PACKET_HOST), is IPv4 without options and not a fragment or
// IPv6 without extension headers (CLASSIC-4.3), holds a UDP datagram to
// the knock port, and the payload's first byte and length may be a knock:
// a digit and MinClassicLen to MaxClassicLen+1 bytes, or
// protocol.ModernMagic and MinModernLen to MaxModernLen bytes (CLASSIC-2.3,
// 2.6). What it drops never reaches user space and is not counted.
//
// Read decodes what passes and reports drops by reason with sentinel
// errors: malformed headers (ErrTruncated), a bad IPv4 header or UDP
// checksum (ErrChecksum; skipped for the UDP checksum when the frame's
// tp_status says it is verified or not computed yet, as for the host's own
// and veth traffic; an IPv4 UDP checksum of 0 means none, an IPv6 one is
// invalid), addresses no packet can carry (ErrMartian: IPv4-mapped or
// -compatible addresses in an IPv6 header, which are never unmapped, and
// unspecified, multicast, broadcast or off-loopback loopback sources) and
// destinations that are not own addresses (ErrNotLocal, CLASSIC-4.4).
//
// # Own addresses
//
// A knock counts only when its destination is an own address of the
// watched interface. With "any" that is every address of the network
// namespace except loopback addresses (127.0.0.0/8, ::1), and nothing that
// came over a loopback device counts, so the host cannot knock for itself.
// Knocks to 127.0.0.1 or ::1 count only when the admin names the loopback
// device. Broadcast, multicast and other devices' addresses never count.
// Config.AcceptForeign turns this check off for the conformance suite's
// mutants.
//
// # Interface changes
//
// A watcher follows the interface over netlink (and re-reads it every 30
// s): it keeps the own addresses current, logs the device going down,
// coming up, going away and coming back, and when the device is re-created
// under the same name (a new ifindex) it re-binds the capture socket to it
// (SO_BINDTODEVICE again in ModeSocket). None of this is an error for
// Read.
//
// # Link types
//
//   - Ethernet (physical, veth, macvlan, bridge): ModeRaw header 14.
//   - 802.1Q-tagged frames: the kernel moves the tag into the skb before
//     packet sockets see the frame (skb_vlan_untag), so ModeNetwork sees
//     plain IP and ModeRaw still sees a 14-byte header. libpcap puts the
//     tag back, which is why the original needed link-header-length 18 for
//     tagged knocks (and then missed untagged ones); this package does not
//     reinsert it, and the hex dump says "802.1Q vlan N tag removed by the
//     kernel". Double-tagged (QinQ) frames keep the inner tag in the data:
//     use ModeNetwork.
//   - Loopback: Ethernet-like, header 14; every packet passes the packet
//     tap twice (outgoing and incoming): outgoing frames are dropped by
//     PACKET_IGNORE_OUTGOING and by the filter.
//   - tun (ARPHRD_NONE), raw IP, ipip/sit tunnels and PPP: no link header
//     (0). PPP over Ethernet: capture on the ppp device, not on the
//     Ethernet device carrying the sessions.
//   - "any": all devices of the network namespace; ModeNetwork and
//     ModeSocket only, as their link headers differ.
package capture
