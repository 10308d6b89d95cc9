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

// Ring and socket tuning.
const (
	// rcvBufSize is the UDP socket receive buffer asked for in ModeSocket.
	rcvBufSize = 4 << 20
	// socketBufSize holds the largest UDP payload; only payloads that may
	// be knocks are passed on, and a longer one is reported truncated.
	socketBufSize = 64 << 10
	// waitRetries bounds how many times in a row waiting for packets may
	// fail before Read gives up (see Read); waitBackoff is the pause
	// between tries.
	waitRetries = 100
	waitBackoff = 10 * time.Millisecond
)

// binding is what the socket is bound to. The address watcher replaces it
// when the device is re-created under the same name (a new ifindex).
type binding struct {
	ifIndex  int // 0 for "any"
	hatype   uint16
	loopback bool // the named device is a loopback device
	linkType string
	hdrLen   int
	hdrHow   string // where hdrLen comes from, for hex dumps
}

// Conn receives knock candidates. Read must not be called concurrently;
// Close may be called from any goroutine.
type Conn struct {
	cfg Config
	log *slog.Logger
	// The socket. In ModeSocket it goes through the runtime poller (file,
	// rc); the packet socket of the other modes does not (fd): the reader
	// blocks in poll(2) itself, so that the blocks handed over while it is
	// busy wake nobody, and Close wakes it through an eventfd (evfd).
	file   *os.File
	rc     syscall.RawConn
	fd     int
	evfd   int
	socket bool // ModeSocket
	any    bool // Interface is "any"
	bind   atomic.Pointer[binding]
	watch  *watcher

	cancel    context.CancelFunc
	mu        sync.Mutex // guards stopAfter, set while ctx may already fire
	stopAfter func() bool
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	errClosed error

	// readMu is held by Read, and by Close while it unmaps the ring, so
	// that the ring is never unmapped under a Read.
	readMu sync.Mutex
	// Receive state, reused by every Read so that Read does not allocate.
	ring    ring
	pfd     [2]unix.PollFd // the packet socket and evfd
	pacer   wakePacer
	payload [maxPayload]byte
	badWarn bool // a malformed ring frame was logged
	// ModeSocket state.
	buf    []byte
	name   unix.RawSockaddrAny
	oob    [128]byte
	iov    unix.Iovec
	msg    unix.Msghdr
	recvFn func(fd uintptr) bool
	rn     int
	rerr   syscall.Errno
}

// ring is the mapped TPACKET_V2 receive ring and the reader's place in it.
// A frame longer than the ring's frames is cut short by the kernel, and
// reported as ErrTruncated.
type ring struct {
	mem []byte
	geo ringGeometry
	cur ringCursor // the next frame to read
}

// status points at the current frame's tp_status, shared with the kernel.
func (r *ring) status() *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[r.cur.off+tp2StatusOff]))
}

// ready reports whether the current frame is handed to user space.
func (r *ring) ready() bool { return atomic.LoadUint32(r.status())&unix.TP_STATUS_USER != 0 }

// frame returns the current frame's slot.
func (r *ring) frame() []byte {
	end := r.cur.off + r.geo.frameSize
	return r.mem[r.cur.off:end:end]
}

// release hands the current frame back to the kernel and moves on.
func (r *ring) release() {
	storeRelease(r.status(), unix.TP_STATUS_KERNEL)
	r.geo.advance(&r.cur)
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
	c := &Conn{cfg: cfg, log: cfg.Logger, any: cfg.Interface == AnyInterface, fd: -1, evfd: -1}
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
		c.release()
		return nil, c.wrap("open", err)
	}
	if c.socket {
		if c.rc, err = c.file.SyscallConn(); err != nil {
			c.release()
			return nil, c.wrap("open", err)
		}
	}
	b := c.bind.Load()
	// The watcher's netlink sockets are opened now, on this thread, so
	// they belong to the same network namespace as the capture socket.
	wctx, cancel := context.WithCancel(ctx)
	name := cfg.Interface
	if c.any {
		name = ""
	}
	c.watch, err = startWatcher(wctx, watcherConfig{name: name, ifIndex: b.ifIndex, loopback: b.loopback,
		rebind: c.rebind, log: c.log})
	if err != nil {
		cancel()
		c.release()
		return nil, c.wrap("read local addresses", err)
	}
	c.cancel = cancel
	c.errClosed = fmt.Errorf("capture: read on %q: %w", cfg.Interface, net.ErrClosed)
	c.mu.Lock()
	c.stopAfter = context.AfterFunc(ctx, func() { c.Close() })
	c.mu.Unlock()
	c.log.Debug("capture: open", "interface", cfg.Interface, "ifindex", b.ifIndex,
		"mode", cfg.Mode, "link_type", b.linkType, "link_header_len", b.hdrLen,
		"knock_port", cfg.KnockPort)
	return c, nil
}

// release frees what Open acquired, after a failed Open or in Close once
// no Read is running.
func (c *Conn) release() error {
	var errs []error
	if c.ring.mem != nil {
		errs = append(errs, unix.Munmap(c.ring.mem))
		c.ring.mem = nil
	}
	for _, fd := range []*int{&c.fd, &c.evfd} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	if c.file != nil {
		errs = append(errs, c.file.Close())
	}
	return errors.Join(errs...)
}

func (c *Conn) wrap(op string, err error) error {
	return fmt.Errorf("capture: %s on interface %q (%s mode): %w", op, c.cfg.Interface, c.cfg.Mode, err)
}

// openPacket opens the AF_PACKET socket and ring of ModeNetwork and
// ModeRaw.
func (c *Conn) openPacket() error {
	typ := unix.SOCK_DGRAM
	if c.cfg.Mode == ModeRaw {
		typ = unix.SOCK_RAW
	}
	// Protocol 0: the socket receives nothing until bind names a
	// protocol, so no unfiltered frame can reach the ring before the
	// filter is attached.
	fd, err := unix.Socket(unix.AF_PACKET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket(AF_PACKET): %w", err)
	}
	c.fd = fd
	if c.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	c.pfd = [2]unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}, {Fd: int32(c.evfd), Events: unix.POLLIN}}

	b := &binding{}
	if c.any {
		if c.cfg.Mode == ModeRaw {
			return errors.New(`raw mode cannot capture on "any": its devices have different link headers; use network mode`)
		}
		b.linkType = linkTypeAny
	} else {
		if b.ifIndex, b.hatype, err = ifInfo(fd, c.cfg.Interface); err != nil {
			return err
		}
		b.linkType, b.loopback = linkTypeName(b.hatype), b.hatype == arphrdLoopback
	}
	if b.hdrLen, err = linkHeaderLen(c.cfg.Mode, b.hatype, c.cfg.LinkHeaderLen); err != nil {
		return err
	}
	switch {
	case c.cfg.Mode == ModeNetwork:
		b.hdrHow = "cooked: the kernel removed the link header"
	case c.cfg.LinkHeaderLen >= 0:
		b.hdrHow = "configured"
	default:
		b.hdrHow = "guessed"
	}

	// Kernels before 4.20 lack PACKET_IGNORE_OUTGOING; the filter drops
	// outgoing frames anyway.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fmt.Errorf("setsockopt(PACKET_VERSION, TPACKET_V2): %w", err)
	}
	c.ring.geo = newRingGeometry(cookedFrameSize)
	if c.cfg.Mode == ModeRaw {
		c.ring.geo = newRingGeometry(rawFrameSize)
	}
	req := unix.TpacketReq{
		Block_size: ringBlockSize,
		Block_nr:   ringBlocks,
		Frame_size: uint32(c.ring.geo.frameSize),
		Frame_nr:   uint32(c.ring.geo.frames),
	}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("setsockopt(PACKET_RX_RING): %w", err)
	}
	c.ring.mem, err = unix.Mmap(fd, 0, ringBlocks*ringBlockSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap of the packet ring: %w", err)
	}
	if err := attachFilter(fd, c.filterSpec(b)); err != nil {
		return err
	}
	c.bind.Store(b)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: b.ifIndex}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// filterSpec is the kernel filter for binding b.
func (c *Conn) filterSpec(b *binding) filterSpec {
	fs := filterSpec{base: 0, extProto: true, port: c.cfg.KnockPort}
	switch {
	case c.socket:
		fs.socket = true
	case c.cfg.Mode == ModeRaw && c.cfg.HexDump != nil:
		// Diagnosis: find the frames by the network header the kernel
		// knows, so the dump shows them even when the length is wrong.
		fs.base = skfNetOff
	case c.cfg.Mode == ModeRaw:
		fs.base, fs.extProto = uint32(b.hdrLen), false
	}
	return fs
}

// rebind follows the named device to its new index after it was
// re-created, and returns whether it is a loopback device. The watcher
// calls it; Read may run meanwhile and sees the new binding atomically.
func (c *Conn) rebind() (ifIndex int, loopback bool, err error) {
	// Close stops the watcher before it closes the socket, so the socket
	// is open here.
	control := func(f func(fd uintptr)) error { f(uintptr(c.fd)); return nil }
	if c.socket {
		control = c.rc.Control
	}
	cerr := control(func(fd uintptr) {
		old := c.bind.Load()
		nb := *old
		if nb.ifIndex, nb.hatype, err = ifInfo(int(fd), c.cfg.Interface); err != nil {
			return
		}
		nb.linkType, nb.loopback = linkTypeName(nb.hatype), nb.hatype == arphrdLoopback
		if c.socket {
			// SO_BINDTODEVICE resolves the name to the new index.
			err = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, c.cfg.Interface)
			if err != nil {
				err = fmt.Errorf("setsockopt(SO_BINDTODEVICE): %w", err)
				return
			}
			c.bind.Store(&nb)
			return
		}
		if nb.hdrLen, err = linkHeaderLen(c.cfg.Mode, nb.hatype, c.cfg.LinkHeaderLen); err != nil {
			return
		}
		if c.filterSpec(&nb) != c.filterSpec(old) {
			if err = attachFilter(int(fd), c.filterSpec(&nb)); err != nil {
				return
			}
		}
		if err = unix.Bind(int(fd), &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: nb.ifIndex}); err != nil {
			err = fmt.Errorf("bind: %w", err)
			return
		}
		c.bind.Store(&nb)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return 0, false, c.wrap("follow the re-created interface", err)
	}
	b := c.bind.Load()
	return b.ifIndex, b.loopback, nil
}

// ifInfo returns the index and ARPHRD type of a device of the socket's
// network namespace.
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

// attachFilter builds and attaches (or replaces) the socket filter.
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

// htons converts a 16-bit value between host and network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

// Read blocks until a knock candidate arrives. It returns nil and fills p
// for a candidate; for a packet it saw and dropped it returns one of
// ErrTruncated, ErrIPOptions, ErrFragment, ErrChecksum, ErrMartian,
// ErrNotLocal or ErrNotCandidate. The watched interface going down, coming
// back, changing addresses or being re-created is not an error: Read
// keeps waiting and the Conn logs what happened. Any other error is fatal;
// after Close it wraps net.ErrClosed. p.Payload is valid until the next
// Read. Read does not allocate (unless Config.HexDump is set).
func (c *Conn) Read(p *Packet) error {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	failures := 0
	for {
		if c.closed.Load() {
			return c.errClosed
		}
		var (
			skip bool
			err  error
		)
		if c.socket {
			skip, err = c.readSocket(p)
		} else {
			skip, err = c.readRing(p)
		}
		werr, wait := err.(*waitError) // not errors.As: that allocates
		switch {
		case wait:
			// Waiting failed: an error report of the socket, or the device
			// going away under it. Retry for a while before calling the
			// failure real.
			if c.closed.Load() {
				return c.errClosed
			}
			if failures++; failures > waitRetries {
				return c.wrap("read", werr.err)
			}
			if failures == 1 {
				c.log.Warn("capture: waiting for packets failed, retrying", "interface", c.cfg.Interface, "err", werr.err)
			}
			time.Sleep(waitBackoff)
		case skip:
		default:
			return err
		}
	}
}

// waitError is a failure to wait for or receive packets, which Read retries.
type waitError struct{ err error }

func (e *waitError) Error() string { return e.err.Error() }

// readRing takes the next frame from the ring, waiting for one when none
// is ready. skip means the frame is not to be reported at all.
func (c *Conn) readRing(p *Packet) (skip bool, err error) {
	r := &c.ring
	if !r.ready() {
		if err := c.waitRing(); err != nil {
			return false, err
		}
		return true, nil // a frame is ready: read it on the next turn
	}
	var f ringFrame
	if !parseFrame(r.frame(), &f) {
		if !c.badWarn {
			c.badWarn = true
			c.log.Warn("capture: malformed frame in the packet ring; skipped", "interface", c.cfg.Interface)
		}
		r.release()
		return true, nil
	}
	// The payload handed out is copied, so the frame can go back to the
	// kernel before the caller looks at it.
	skip, err = c.frame(p, &f)
	r.release()
	return skip, err
}

// waitRing blocks until the ring's current frame is handed over or Close
// is called, after the pause the pacer asks for, if any. An error report
// of the socket (the device went down) wakes it too: reading SO_ERROR
// clears it.
func (c *Conn) waitRing() error {
	if pause := c.pacer.next(time.Now()); pause > 0 {
		// Only Close ends the pause early.
		ts := unix.NsecToTimespec(pause.Nanoseconds())
		if _, err := unix.Ppoll(c.pfd[1:], &ts, nil); err == nil && c.pfd[1].Revents != 0 {
			return c.errClosed
		}
	}
	for !c.ring.ready() {
		_, err := unix.Poll(c.pfd[:], -1)
		switch {
		case c.closed.Load() || c.pfd[1].Revents != 0:
			return c.errClosed
		case err == unix.EINTR:
			continue
		case err != nil:
			return &waitError{fmt.Errorf("poll: %w", err)}
		}
		if ev := c.pfd[0].Revents; ev&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			errno, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			switch {
			case err != nil:
				return &waitError{fmt.Errorf("getsockopt(SO_ERROR): %w", err)}
			case errno != 0:
				c.log.Debug("capture: socket error while waiting", "interface", c.cfg.Interface, "err", syscall.Errno(errno))
			default:
				// Not an error report that reading clears: do not spin on it.
				return &waitError{fmt.Errorf("poll: events %#x on the packet socket", ev)}
			}
		}
	}
	return nil
}

// frame handles one frame of the ring.
func (c *Conn) frame(p *Packet, f *ringFrame) (skip bool, err error) {
	if f.pktType != packetHost {
		return true, nil // the filter passes none; the host's own frames above all
	}
	b := c.bind.Load()
	if c.cfg.HexDump != nil {
		c.dump(f, b)
	}
	if uint32(len(f.data)) < f.wireLen {
		return false, ErrTruncated
	}
	proto := f.proto
	if c.cfg.Mode == ModeRaw {
		proto = 0 // the version nibble decides, as behind any guessed header
	}
	pk, err := decode(f.data, b.hdrLen, proto, f.status, c.cfg.KnockPort)
	if err != nil {
		return false, err
	}
	pk.IfIndex = int(f.ifIndex)
	arrivedLo := b.loopback || (c.any && f.hatype == arphrdLoopback)
	if err := c.checkAddrs(&pk, arrivedLo, b.loopback); err != nil {
		return false, err
	}
	c.deliver(p, &pk)
	return false, nil
}

// checkAddrs applies the address rules that depend on the device: a
// loopback source only over a loopback device; nothing that came over a
// loopback device counts unless the admin named that device (watchedLo);
// and the destination must be an own address of the watched interface
// (CLASSIC-4.4).
func (c *Conn) checkAddrs(pk *Packet, arrivedLo, watchedLo bool) error {
	if pk.Src.IsLoopback() && !arrivedLo {
		return ErrMartian
	}
	if c.cfg.AcceptForeign {
		return nil
	}
	if arrivedLo && !watchedLo {
		return ErrNotLocal
	}
	if !c.watch.isLocal(pk.Dst) {
		return ErrNotLocal
	}
	return nil
}

// deliver copies pk's payload into the Conn's buffer, so that it never
// aliases the ring (which Close unmaps), and hands pk out.
func (c *Conn) deliver(p *Packet, pk *Packet) {
	n := copy(c.payload[:], pk.Payload)
	pk.Payload = c.payload[:n:n]
	*p = *pk
}

// dump writes the hex dump of one captured frame.
func (c *Conn) dump(f *ringFrame, b *binding) {
	d := dumpInfo{ifIndex: int(f.ifIndex), linkType: linkTypeName(f.hatype),
		hdrLen: b.hdrLen, hdrHow: b.hdrHow, vlan: -1}
	if c.cfg.Mode == ModeNetwork {
		d.linkType += " (cooked)"
	}
	if f.status&tpStatusVLANValid != 0 {
		d.vlan = int(f.vlanTCI & 0x0fff)
	}
	writeHexDump(c.cfg.HexDump, d, f.data)
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
		c.cancel()
		<-c.watch.done // no rebind from now on
		// Wake a waiting Read, then wait until it has left the ring.
		if c.socket {
			c.file.SetReadDeadline(time.Now()) // wakes the runtime poller
		} else {
			unix.Write(c.evfd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		}
		c.readMu.Lock()
		c.closeErr = c.release()
		c.readMu.Unlock()
	})
	return c.closeErr
}

// Buffered reports whether a packet is waiting that Read would take
// without waiting: a frame handed over in the ring, or a datagram queued
// on the socket in ModeSocket. The daemon asks it to decide whether more
// knocks may follow the one in hand. Like Read, it must not be called
// concurrently with Read.
func (c *Conn) Buffered() bool {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.closed.Load() {
		return false
	}
	if !c.socket {
		return c.ring.ready()
	}
	queued := 0
	c.rc.Control(func(fd uintptr) {
		queued, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) // the next datagram's length
	})
	return queued > 0
}

// LinkType names the capture device's link type, e.g. "ethernet",
// "none (raw IP)", "loopback", "ppp" or "any (cooked)".
func (c *Conn) LinkType() string { return c.bind.Load().linkType }

// LinkHeaderLen is the link-header length skipped: 0 in ModeNetwork and
// ModeSocket.
func (c *Conn) LinkHeaderLen() int { return c.bind.Load().hdrLen }
