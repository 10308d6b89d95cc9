//go:build linux

package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket tuning.
const (
	// rcvBufSize is the socket receive buffer asked for: knock floods are
	// expected and a full buffer silently drops knocks.
	rcvBufSize = 4 << 20
	// frameBufSize holds the largest frame a 64 KiB-MTU loopback delivers.
	frameBufSize = 64<<10 + 256
	// tpStatusVLANValid is TP_STATUS_VLAN_VALID in tpacket_auxdata.status.
	tpStatusVLANValid = 0x10
)

// Conn receives candidate packets. Read must not be called concurrently;
// Close may be called from any goroutine.
type Conn struct {
	cfg      Config
	log      *slog.Logger
	file     *os.File
	rc       syscall.RawConn
	readFn   func(fd uintptr) bool
	socket   bool // ModeSocket
	ifIndex  int
	linkType string
	hdrLen   int
	hdrHow   string
	addrs    *addrWatcher

	cancel    context.CancelFunc
	mu        sync.Mutex // guards stopAfter, set while ctx may already fire
	stopAfter func() bool
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	errClosed error

	// Receive state, reused by every Read so that Read does not allocate.
	buf  []byte
	name unix.RawSockaddrAny
	oob  [128]byte
	iov  unix.Iovec
	msg  unix.Msghdr
	rn   int
	rerr syscall.Errno
}

// Open starts capturing as cfg says. The Conn lives until Close is called
// or ctx is done, whichever comes first. Errors name the interface and the
// operation that failed.
func Open(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.Interface == "" {
		return nil, errors.New("capture: no interface given")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{cfg: cfg, log: cfg.Logger}
	var err error
	switch cfg.Mode {
	case ModeNetwork, ModeRaw:
		err = c.openPacket()
	case ModeSocket:
		err = c.openSocket()
	default:
		err = fmt.Errorf("unknown mode %v", cfg.Mode)
	}
	if err != nil {
		if c.file != nil {
			c.file.Close()
		}
		return nil, c.wrap("open", err)
	}
	// The address watcher's netlink sockets are opened now, on this thread,
	// so they belong to the same network namespace as the capture socket.
	wctx, cancel := context.WithCancel(ctx)
	c.addrs, err = startAddrWatcher(wctx, c.ifIndex, c.log)
	if err != nil {
		cancel()
		c.file.Close()
		return nil, c.wrap("read local addresses", err)
	}
	c.cancel = cancel
	c.errClosed = fmt.Errorf("capture: read on %q: %w", cfg.Interface, net.ErrClosed)
	c.rc, err = c.file.SyscallConn()
	if err != nil {
		c.Close()
		return nil, c.wrap("open", err)
	}
	c.buf = make([]byte, frameBufSize)
	c.iov.Base = &c.buf[0]
	c.iov.SetLen(len(c.buf))
	c.msg.Name = (*byte)(unsafe.Pointer(&c.name))
	c.msg.Iov = &c.iov
	c.msg.Iovlen = 1
	c.msg.Control = &c.oob[0]
	c.readFn = c.recvmsg
	c.mu.Lock()
	c.stopAfter = context.AfterFunc(ctx, func() { c.Close() })
	c.mu.Unlock()
	c.log.Debug("capture: open", "interface", cfg.Interface, "ifindex", c.ifIndex,
		"mode", cfg.Mode, "link_type", c.linkType, "link_header_len", c.hdrLen,
		"knock_port", cfg.KnockPort, "syn", cfg.SYN)
	return c, nil
}

func (c *Conn) wrap(op string, err error) error {
	return fmt.Errorf("capture: %s on interface %q (%s mode): %w", op, c.cfg.Interface, c.cfg.Mode, err)
}

// openPacket opens the AF_PACKET socket of ModeNetwork and ModeRaw.
func (c *Conn) openPacket() error {
	typ := unix.SOCK_DGRAM
	if c.cfg.Mode == ModeRaw {
		typ = unix.SOCK_RAW
	}
	// Protocol 0: the socket receives nothing until bind names a
	// protocol, so no unfiltered frame can be queued before the filter is
	// attached. The drain below is there all the same.
	fd, err := unix.Socket(unix.AF_PACKET, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket(AF_PACKET): %w", err)
	}
	c.file = os.NewFile(uintptr(fd), "capture:"+c.cfg.Interface)

	var hatype uint16
	if c.cfg.Interface == AnyInterface {
		if c.cfg.Mode == ModeRaw {
			return errors.New(`raw mode cannot capture on "any": its devices have different link headers; use network mode`)
		}
		c.linkType = linkTypeAny
	} else {
		if c.ifIndex, hatype, err = ifInfo(fd, c.cfg.Interface); err != nil {
			return err
		}
		c.linkType = linkTypeName(hatype)
	}
	if c.hdrLen, err = linkHeaderLen(c.cfg.Mode, hatype, c.cfg.LinkHeaderLen); err != nil {
		return err
	}
	switch {
	case c.cfg.Mode == ModeNetwork:
		c.hdrHow = "cooked: the kernel removed the link header"
	case c.cfg.LinkHeaderLen >= 0:
		c.hdrHow = "configured"
	default:
		c.hdrHow = "guessed"
	}

	// Kernels before 4.20 lack PACKET_IGNORE_OUTGOING; the filter and Read
	// drop outgoing frames anyway.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	// Receive times for SYNs (Packet.Time); without them doors fall back
	// to asking the kernel's socket table.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	if c.cfg.HexDump != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return fmt.Errorf("setsockopt(PACKET_AUXDATA): %w", err)
		}
	}
	setRcvBuf(fd, c.log)

	fs := filterSpec{base: 0, extProto: true, port: c.cfg.KnockPort, syn: c.cfg.SYN}
	if c.cfg.Mode == ModeRaw {
		fs.base, fs.extProto = uint32(c.hdrLen), false
		if c.cfg.HexDump != nil {
			// Diagnosis: find the frames by the network header the kernel
			// knows, so the dump shows them even when the length is wrong.
			fs.base, fs.extProto = skfNetOff, true
		}
	}
	if err := attachFilter(fd, fs); err != nil {
		return err
	}
	drainSocket(fd)
	sll := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: c.ifIndex}
	if err := unix.Bind(fd, sll); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// ifInfo returns the index and ARPHRD type of a device of the calling
// thread's network namespace.
func ifInfo(fd int, name string) (int, uint16, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, 0, fmt.Errorf("interface name: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, 0, fmt.Errorf("ioctl(SIOCGIFINDEX): %w", err)
	}
	idx := int(ifr.Uint32())
	if ifr, err = unix.NewIfreq(name); err != nil {
		return 0, 0, fmt.Errorf("interface name: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, 0, fmt.Errorf("ioctl(SIOCGIFHWADDR): %w", err)
	}
	return idx, ifr.Uint16(), nil // ifr_hwaddr.sa_family holds dev->type
}

// setRcvBuf asks for a large receive buffer, beyond rmem_max when allowed.
func setRcvBuf(fd int, log *slog.Logger) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBufSize) == nil {
		return
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBufSize); err != nil {
		log.Warn("capture: cannot set the receive buffer size", "err", err)
	}
}

// attachFilter builds and attaches the socket filter.
func attachFilter(fd int, fs filterSpec) error {
	raw, err := buildFilter(fs)
	if err != nil {
		return fmt.Errorf("build filter: %w", err)
	}
	prog := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("setsockopt(SO_ATTACH_FILTER): %w", err)
	}
	return nil
}

// drainSocket discards whatever was queued before the filter was attached.
func drainSocket(fd int) {
	var b [1]byte
	for range 1 << 16 {
		if _, _, err := unix.Recvfrom(fd, b[:], unix.MSG_DONTWAIT|unix.MSG_TRUNC); err != nil {
			return
		}
	}
}

// htons converts a 16-bit value between host and network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

// recvmsg is the RawConn read callback: one recvmsg into the Conn's buffers.
// It reports false (wait for readability) on EAGAIN.
func (c *Conn) recvmsg(fd uintptr) bool {
	for {
		c.msg.Namelen = uint32(unsafe.Sizeof(c.name))
		c.msg.SetControllen(len(c.oob))
		c.msg.Flags = 0
		n, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.msg)), 0)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.rn, c.rerr = int(n), errno
		return true
	}
}

// Read blocks until a packet arrives. It returns nil and fills p for a
// candidate packet; for a packet it saw and dropped it returns one of
// ErrTruncated, ErrIPOptions, ErrFragment, ErrNotLocal or ErrNotCandidate.
// Any other error is fatal; after Close it wraps net.ErrClosed.
// p.Payload aliases the Conn's buffer until the next Read. Read does not
// allocate (unless Config.HexDump is set).
func (c *Conn) Read(p *Packet) error {
	for {
		if c.closed.Load() {
			return c.errClosed
		}
		if err := c.rc.Read(c.readFn); err != nil {
			if c.closed.Load() || errors.Is(err, os.ErrClosed) {
				return c.errClosed
			}
			return c.wrap("read", err)
		}
		if c.rerr != 0 {
			if c.closed.Load() {
				return c.errClosed
			}
			return c.wrap("recvmsg", c.rerr)
		}
		frame := c.buf[:c.rn]
		var (
			err  error
			skip bool
		)
		if c.socket {
			err = c.readSocket(p, frame)
		} else {
			skip, err = c.readPacket(p, frame)
		}
		if !skip {
			return err
		}
	}
}

// readPacket handles one frame of ModeNetwork or ModeRaw. skip means the
// frame is not to be reported at all (the host's own outgoing frames).
func (c *Conn) readPacket(p *Packet, frame []byte) (skip bool, err error) {
	sll := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&c.name))
	if sll.Pkttype == unix.PACKET_OUTGOING {
		return true, nil
	}
	if c.cfg.HexDump != nil {
		c.dump(frame, sll)
	}
	if c.msg.Flags&unix.MSG_TRUNC != 0 {
		return false, ErrTruncated
	}
	proto := htons(sll.Protocol)
	if c.cfg.Mode == ModeRaw {
		proto = 0 // the version nibble decides, as behind any guessed header
	}
	pk, err := decode(frame, c.hdrLen, proto)
	if err != nil {
		return false, err
	}
	if !isCandidate(&pk, c.cfg.KnockPort, c.cfg.SYN) {
		return false, ErrNotCandidate
	}
	if !c.addrs.isLocal(pk.Dst) {
		return false, ErrNotLocal
	}
	pk.IfIndex = int(sll.Ifindex)
	if pk.Proto == ProtoTCP {
		pk.Time = c.rxTime()
	}
	*p = pk
	return false, nil
}

// rxTime returns the kernel receive time from the last recvmsg's control
// messages, or zero.
func (c *Conn) rxTime() time.Time {
	var t time.Time
	forEachCmsg(c.oob[:c.msg.Controllen], func(level, typ int32, data []byte) {
		if level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			t = time.Unix(ts.Unix())
		}
	})
	return t
}

// dump writes the hex dump of one captured frame.
func (c *Conn) dump(frame []byte, sll *unix.RawSockaddrLinklayer) {
	d := dumpInfo{ifIndex: int(sll.Ifindex), linkType: linkTypeName(sll.Hatype),
		hdrLen: c.hdrLen, hdrHow: c.hdrHow, vlan: -1}
	if c.cfg.Mode == ModeNetwork {
		d.linkType += " (cooked)"
	}
	forEachCmsg(c.oob[:c.msg.Controllen], func(level, typ int32, data []byte) {
		if level != unix.SOL_PACKET || typ != unix.PACKET_AUXDATA || len(data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			return
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&data[0]))
		if aux.Status&tpStatusVLANValid != 0 {
			d.vlan = int(aux.Vlan_tci & 0x0fff)
		}
	})
	writeHexDump(c.cfg.HexDump, d, frame)
}

// forEachCmsg walks the control messages of a recvmsg without allocating.
func forEachCmsg(oob []byte, f func(level, typ int32, data []byte)) {
	hdrLen := unix.CmsgLen(0)
	for len(oob) >= hdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdrLen || l > len(oob) {
			return
		}
		f(h.Level, h.Type, oob[hdrLen:l])
		next := unix.CmsgSpace(l - hdrLen)
		if next >= len(oob) {
			return
		}
		oob = oob[next:]
	}
}

// Close stops the capture and unblocks a pending Read. It is safe to call
// more than once and from any goroutine.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.mu.Lock()
		stop := c.stopAfter
		c.mu.Unlock()
		if stop != nil {
			stop()
		}
		c.closeErr = c.file.Close()
		c.cancel()
		<-c.addrs.done
	})
	return c.closeErr
}

// LinkType names the capture device's link type, e.g. "ethernet",
// "none (raw IP)", "loopback", "ppp" or "any (cooked)".
func (c *Conn) LinkType() string { return c.linkType }

// LinkHeaderLen is the link-header length skipped: 0 in ModeNetwork and
// ModeSocket.
func (c *Conn) LinkHeaderLen() int { return c.hdrLen }
