//go:build linux

package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/doorman-project/doorman/internal/netsim"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// Connection probing after a knock. A SYN that beats the door is dropped
// and its socket waits a second for the retransmission, so a client that
// wants to know when the door opened keeps starting attempts while the
// earlier ones stay in flight; the first to connect is the one the door
// let in. knocker.DialOpen does this every 25 ms after a 5 ms pause, too
// coarse to measure a sub-millisecond door, and with a blocked thread per
// attempt in a namespace (Host.Do), too costly for a crowd of clients.
// prober.connect starts attempts on a probeSchedule from one goroutine
// polling non-blocking sockets.
type probeSchedule struct {
	every     time.Duration // between attempts at first
	fast      int           // attempts at every, then one every slowEvery
	slowEvery time.Duration
	max       int // attempts in all
}

// fineProbe times a door to a tenth of a millisecond: an attempt every
// 100 µs for 10 ms, then every 5 ms.
var fineProbe = probeSchedule{every: 100 * time.Microsecond, fast: 100, slowEvery: 5 * time.Millisecond, max: 500}

// probeEvery is fineProbe's interval, for transcripts.
const probeEvery = 100 * time.Microsecond

// probe is a connection attempt in flight.
type probe struct{ fd int }

// prober makes connection attempts from one address of a host.
type prober struct {
	h     *netsim.Host
	src   netip.Addr
	spare []int // sockets made in h and bound to src, not yet connecting
}

// newProber returns a prober from src in h (one of h's addresses) with n
// sockets made beforehand, so that a crowd of probers starts probing
// without waiting for threads to enter namespaces.
func newProber(h *netsim.Host, src netip.Addr, n int) (*prober, error) {
	p := &prober{h: h, src: src}
	if err := p.more(n); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// more makes n more sockets. Sockets belong to the namespace they are
// made in; made there in a batch, they connect from any thread.
func (p *prober) more(n int) error {
	local := &unix.SockaddrInet4{Addr: p.src.As4()}
	return p.h.Do(func() error {
		for range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("probe socket in %s: %w", p.h.Name(), err)
			}
			p.spare = append(p.spare, fd)
			if err := unix.Bind(fd, local); err != nil {
				return fmt.Errorf("probe socket in %s: bind %v: %w", p.h.Name(), p.src, err)
			}
		}
		return nil
	})
}

// Close closes the sockets not used.
func (p *prober) Close() {
	for _, fd := range p.spare {
		unix.Close(fd)
	}
	p.spare = nil
}

// connect connects from p's address to dst as described above, on
// schedule ps, until one attempt connects, ctx ends or ps.max attempts
// were made, and returns the connection and when its handshake completed.
// It makes more sockets when its spare ones run out.
func (p *prober) connect(ctx context.Context, dst netip.AddrPort, ps probeSchedule) (net.Conn, time.Time, error) {
	var live []probe
	defer func() {
		for _, pr := range live {
			unix.Close(pr.fd)
		}
	}()
	sa := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	made := 0
	next := time.Now()
	var lastErr error
	for {
		if err := ctx.Err(); err != nil {
			return nil, time.Time{}, errors.Join(err, lastErr)
		}
		now := time.Now()
		if made < ps.max && !now.Before(next) {
			if len(p.spare) == 0 {
				if err := p.more(32); err != nil {
					return nil, time.Time{}, err
				}
			}
			fd := p.spare[len(p.spare)-1]
			p.spare = p.spare[:len(p.spare)-1]
			made++
			if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
				unix.Close(fd)
				lastErr = err
			} else {
				live = append(live, probe{fd: fd})
			}
			every := ps.every
			if made >= ps.fast {
				every = ps.slowEvery
			}
			next = now.Add(every)
		}
		wait := time.Until(next)
		if made >= ps.max {
			wait = 10 * time.Millisecond
		}
		fds := make([]unix.PollFd, len(live))
		for i, pr := range live {
			fds[i] = unix.PollFd{Fd: int32(pr.fd), Events: unix.POLLOUT}
		}
		if len(fds) == 0 {
			time.Sleep(max(wait, 0))
			continue
		}
		ts := unix.NsecToTimespec(max(wait, 0).Nanoseconds())
		n, err := unix.Ppoll(fds, &ts, nil)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return nil, time.Time{}, fmt.Errorf("ppoll: %w", err)
		}
		if n <= 0 {
			continue
		}
		at := time.Now()
		kept := live[:0]
		var won = -1
		for i, pr := range live {
			if fds[i].Revents == 0 || won >= 0 {
				kept = append(kept, pr)
				continue
			}
			soErr, err := unix.GetsockoptInt(pr.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil && soErr == 0 && fds[i].Revents&unix.POLLOUT != 0 {
				won = pr.fd
				continue
			}
			if err == nil {
				err = syscall.Errno(soErr)
			}
			lastErr = err
			unix.Close(pr.fd)
		}
		live = kept
		if won >= 0 {
			f := os.NewFile(uintptr(won), "probe")
			c, err := net.FileConn(f)
			f.Close()
			if err != nil {
				return nil, time.Time{}, err
			}
			return c, at, nil
		}
		if made >= ps.max && len(live) == 0 {
			return nil, time.Time{}, fmt.Errorf("%d connection attempts failed: %w", made, lastErr)
		}
	}
}

// synFrames returns n Ethernet frames of TCP SYNs from src to dst, each
// from another source port and with a random sequence number, as a port
// scanner or SYN flooder sends them.
func synFrames(srcMAC, dstMAC net.HardwareAddr, src netip.Addr, dst netip.AddrPort, n int) ([][]byte, error) {
	rnd := make([]byte, 6*n)
	if _, err := rand.Read(rnd); err != nil {
		return nil, err
	}
	frames := make([][]byte, n)
	for i := range frames {
		r := rnd[i*6:]
		eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Id: binary.BigEndian.Uint16(r),
			Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.Addr().AsSlice()}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(10000 + i%50000), DstPort: layers.TCPPort(dst.Port()),
			Seq: binary.BigEndian.Uint32(r[2:]), SYN: true, Window: 64240,
			Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
			return nil, fmt.Errorf("SYN frame: %w", err)
		}
		frames[i] = buf.Bytes()
	}
	return frames, nil
}

// frameSender writes whole Ethernet frames out of one interface with an
// AF_PACKET socket, a batch per sendmmsg(2), past the qdisc: a generator
// that costs little more than the frames' trip through the kernel.
type frameSender struct {
	fd   int
	addr unix.RawSockaddrLinklayer
}

// newFrameSender opens a sender on end, towards the MAC dst.
func newFrameSender(end *netsim.LinkEnd, dst net.HardwareAddr) (*frameSender, error) {
	s := &frameSender{fd: -1}
	err := end.Host.Do(func() error {
		// Protocol 0: the socket only sends and never queues received frames.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		s.fd = fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("packet socket in %s: %w", end.Host.Name(), err)
	}
	// Not every kernel has the bypass; without it frames go through the
	// (empty) qdisc, a little slower.
	_ = unix.SetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	s.addr = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: netsim.Htons(unix.ETH_P_IP),
		Ifindex: int32(end.IfIndex), Halen: 6}
	copy(s.addr.Addr[:], dst)
	return s, nil
}

func (s *frameSender) Close() error { return unix.Close(s.fd) }

// send writes frames with one sendmmsg(2) and returns how many went out.
// A full device queue (ENOBUFS) counts as sent none, not as an error.
func (s *frameSender) send(frames [][]byte) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	iov := make([]unix.Iovec, len(frames))
	msgs := make([]unix.Mmsghdr, len(frames))
	for i, f := range frames {
		iov[i].Base = &f[0]
		iov[i].SetLen(len(f))
		msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&s.addr))
		msgs[i].Hdr.Namelen = unix.SizeofSockaddrLinklayer
		msgs[i].Hdr.Iov = &iov[i]
		msgs[i].Hdr.SetIovlen(1)
	}
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	runtime.KeepAlive(frames)
	runtime.KeepAlive(iov)
	runtime.KeepAlive(s)
	if errno != 0 {
		if errno == unix.ENOBUFS || errno == unix.EAGAIN {
			return 0, nil
		}
		return 0, fmt.Errorf("sendmmsg: %w", errno)
	}
	return int(n), nil
}

// sendPaced sends frames round-robin with s at rate per second, a batch
// per system call, for at most dur and rate×dur frames, falling behind
// rather than past dur when the machine cannot keep up. It returns how
// many were sent and over how long.
func sendPaced(ctx context.Context, s *frameSender, frames [][]byte, rate int, dur time.Duration) (int, time.Duration, error) {
	total := int(float64(rate) * dur.Seconds())
	batch := make([][]byte, 0, floodBatch)
	start := time.Now()
	deadline := start.Add(dur)
	sent, next := 0, 0
	for sent < total && ctx.Err() == nil {
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		due := start.Add(time.Duration(float64(sent) / float64(rate) * float64(time.Second)))
		if wait := due.Sub(now); wait > 0 {
			time.Sleep(wait)
		}
		batch = batch[:0]
		for range min(floodBatch, total-sent) {
			batch = append(batch, frames[next])
			next = (next + 1) % len(frames)
		}
		n, err := s.send(batch)
		sent += n
		if err != nil {
			return sent, time.Since(start), err
		}
	}
	return sent, time.Since(start), nil
}
