//go:build linux

package firewall

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nflogConn reads the claim reports of one netfilter log group.
type nflogConn struct {
	c     *netlink.Conn
	group uint16
	once  sync.Once
}

// nflogRcvBuf is the socket's receive buffer: claims come one per door, so
// this holds thousands; if it still overflows the upkeep routine recovers
// the lost claims from the kernel's sets.
const nflogRcvBuf = 1 << 20

// nflogBindPatience is how long a bind refused as in use is retried. A
// socket just closed by its owner (an earlier instance, a crashed daemon)
// releases the group only when the last reference to it goes, which a
// process forked at that moment delays until its exec.
const nflogBindPatience = time.Second

// openNFLog binds group in the calling thread's network namespace. Only one
// socket per namespace may bind a group: the kernel refuses another
// socket's bind with EPERM (and a repeated bind from the same socket with
// EBUSY), which is retried for nflogBindPatience and then reported as the
// group being in use.
func openNFLog(ctx context.Context, group uint16) (*nflogConn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("log group %d: netlink: %w", group, err)
	}
	_ = c.SetReadBuffer(nflogRcvBuf)
	l := &nflogConn{c: c, group: group}
	deadline := time.Now().Add(nflogBindPatience)
	for {
		err = l.config(nfulaCfgCmd, []byte{nfulnlCfgCmdBind})
		inUse := errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY)
		if !inUse || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.Close()
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("log group %d is in use by another program (or doormand lacks CAP_NET_ADMIN); choose another with nft-log-group: %w", group, err)
		}
		return nil, fmt.Errorf("log group %d: bind: %w", group, err)
	}
	// struct nfulnl_msg_config_mode: copy_range (be32), copy_mode, pad.
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, nflogSnaplen)
	mode[4] = nfulnlCopyPacket
	if err := l.config(nfulaCfgMode, mode); err != nil {
		l.close()
		return nil, fmt.Errorf("log group %d: copy mode: %w", group, err)
	}
	// One message at a time, at once: a claim reported late is a door
	// that opens late (the kernel's default batches for up to a second).
	for _, cfg := range []struct {
		attr uint16
		val  uint32
	}{{nfulaCfgQThresh, 1}, {nfulaCfgTimeout, 0}} {
		v := binary.BigEndian.AppendUint32(nil, cfg.val)
		if err := l.config(cfg.attr, v); err != nil {
			l.close()
			return nil, fmt.Errorf("log group %d: batching: %w", group, err)
		}
	}
	return l, nil
}

// config sends one NFULNL_MSG_CONFIG for the group and waits for its ack.
func (l *nflogConn) config(attr uint16, value []byte) error {
	ad := netlink.NewAttributeEncoder()
	ad.Bytes(attr, value)
	attrs, err := ad.Encode()
	if err != nil {
		return err
	}
	hdr := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(hdr[2:], l.group)
	_, err = l.c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8 | nfulnlMsgConfig),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append(hdr, attrs...),
	})
	return err
}

// receive returns the claims of the next batch of messages. errNFLogLost
// means the socket overflowed and reports were lost.
func (l *nflogConn) receive() ([]Claim, error) {
	msgs, err := l.c.Receive()
	if err != nil {
		if errors.Is(err, unix.ENOBUFS) {
			return nil, errNFLogLost
		}
		return nil, err
	}
	var claims []Claim
	for _, m := range msgs {
		if m.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket) {
			continue
		}
		c, err := parseNFLogPacket(m.Data)
		if err != nil {
			continue // not ours, or not a claim: nothing to do with it
		}
		claims = append(claims, c)
	}
	return claims, nil
}

// errNFLogLost reports that claim reports were dropped by the kernel.
var errNFLogLost = errors.New("log group overflowed: claim reports lost")

// close closes the socket, which unbinds the group and unblocks receive.
// (An explicit unbind would wait for the receiver's lock.)
func (l *nflogConn) close() {
	l.once.Do(func() { l.c.Close() })
}
