//go:build linux

package netsim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// Record captures every frame sent or received on iface in the host into a
// pcap file, until stop is called or the network is closed. A relative file
// is placed in Options.Artifacts (ErrNoArtifacts if that is empty); an
// absolute one is used as is. Ethernet interfaces give link type Ethernet,
// with VLAN tags the kernel stripped put back (as libpcap does); tun
// interfaces give link type Raw (bare IP). Capture is bound before Record
// returns, so anything sent afterwards is in the file. stop flushes and
// closes the file; it is idempotent.
func (h *Host) Record(iface, file string) (stop func() error, err error) {
	path := file
	if !filepath.IsAbs(file) {
		if h.net.artifacts == "" {
			return nil, fmt.Errorf("netsim: record %s: %w", file, ErrNoArtifacts)
		}
		path = filepath.Join(h.net.artifacts, file)
	}
	link, err := h.nl.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("netsim: record: find %s in %s: %w", iface, h.name, err)
	}
	linkType := layers.LinkTypeEthernet
	if link.Attrs().EncapType != "ether" {
		linkType = layers.LinkTypeRaw
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("netsim: record: %w", err)
	}
	var sock *os.File
	err = h.Do(func() error {
		proto := Htons(unix.ETH_P_ALL)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: link.Attrs().Index}); err != nil {
			unix.Close(fd)
			return err
		}
		// Auxdata carries the VLAN tag the kernel strips before capture.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			unix.Close(fd)
			return err
		}
		sock = os.NewFile(uintptr(fd), "packet:"+iface)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netsim: record: capture socket on %s in %s: %w", iface, h.name, err)
	}
	out, err := os.Create(path)
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("netsim: record: %w", err)
	}
	bw := bufio.NewWriter(out)
	w := pcapgo.NewWriter(bw)
	if err := w.WriteFileHeader(maxFrame, linkType); err != nil {
		sock.Close()
		out.Close()
		return nil, fmt.Errorf("netsim: record: %w", err)
	}
	rec := &recorder{sock: sock, out: out, bw: bw, w: w, eth: linkType == layers.LinkTypeEthernet, done: make(chan struct{})}
	go rec.routineCapture()
	h.net.mu.Lock()
	if h.net.closed {
		h.net.mu.Unlock()
		return nil, errors.Join(ErrClosed, rec.stop())
	}
	h.net.stops = append(h.net.stops, rec.stop)
	h.net.mu.Unlock()
	h.net.log.Debug("recording", "host", h.name, "iface", iface, "file", path)
	return rec.stop, nil
}

// recorder copies frames from a packet socket to a pcap writer.
type recorder struct {
	sock *os.File
	out  *os.File
	bw   *bufio.Writer
	w    *pcapgo.Writer
	eth  bool
	done chan struct{}

	once    sync.Once
	stopErr error
	werr    error // first write error, owned by routineCapture until done
}

func (r *recorder) routineCapture() {
	defer close(r.done)
	rc, err := r.sock.SyscallConn()
	if err != nil {
		r.werr = err
		return
	}
	buf := make([]byte, maxFrame)
	oob := make([]byte, 512)
	for {
		var n, oobn int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			// MSG_TRUNC makes n the real length even if buf was too small.
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return // socket closed by stop
		}
		if rerr != nil {
			continue
		}
		frame := buf[:min(n, len(buf))]
		length := n
		if r.eth {
			if tci, tpid, ok := vlanFromControl(oob[:oobn]); ok {
				frame = insertTag(frame, tpid, tci)
				length += dot1QLen
			}
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(frame), Length: length}
		if err := r.w.WritePacket(ci, frame); err != nil && r.werr == nil {
			r.werr = err
		}
	}
}

func (r *recorder) stop() error {
	r.once.Do(func() {
		r.sock.Close()
		<-r.done
		r.stopErr = errors.Join(r.werr, r.bw.Flush(), r.out.Close())
		if r.stopErr != nil {
			r.stopErr = fmt.Errorf("netsim: record %s: %w", r.out.Name(), r.stopErr)
		}
	})
	return r.stopErr
}

// tpacket_auxdata layout (linux/if_packet.h): status, len, snaplen u32;
// mac, net, vlan_tci, vlan_tpid u16.
const (
	auxdataLen     = 20
	auxdataTCIOff  = 16
	auxdataTPIDOff = 18
)

// vlanFromControl looks for PACKET_AUXDATA in socket control messages and
// returns the VLAN tag the kernel removed from the frame, if any.
func vlanFromControl(oob []byte) (tci, tpid uint16, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, 0, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < auxdataLen {
			continue
		}
		status := binary.NativeEndian.Uint32(m.Data)
		if status&unix.TP_STATUS_VLAN_VALID == 0 {
			return 0, 0, false
		}
		tci, tpid = binary.NativeEndian.Uint16(m.Data[auxdataTCIOff:]), EtherTypeDot1Q
		if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			if t := binary.NativeEndian.Uint16(m.Data[auxdataTPIDOff:]); t != 0 {
				tpid = t
			}
		}
		return tci, tpid, true
	}
	return 0, 0, false
}

// insertTag returns frame with a VLAN tag put back after the MAC addresses;
// frames too short to have them are returned unchanged.
func insertTag(frame []byte, tpid, tci uint16) []byte {
	if len(frame) < 12 {
		return frame
	}
	out := make([]byte, 0, len(frame)+dot1QLen)
	out = append(out, frame[:12]...)
	out = binary.BigEndian.AppendUint16(out, tpid)
	out = binary.BigEndian.AppendUint16(out, tci)
	return append(out, frame[12:]...)
}
