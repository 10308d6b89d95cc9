package knocker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/doorman-project/doorman/protocol"
)

// SourceMode says which source address a modern knock states
// (MODERN-12.7, MODERN-12.15).
type SourceMode uint8

// Source modes.
const (
	// SourceLocal states the address the system sends the knock from: the
	// doorman then opens the door only if the knock arrives from it, so a
	// knock seen on the wire cannot be raced from elsewhere. Behind NAT the
	// doorman sees another address and refuses the knock; use SourceSeen.
	SourceLocal SourceMode = iota
	// SourceSeen states no address: the doorman opens the door for the
	// address the knock arrives from. It works behind NAT, and can be
	// raced by whoever sees the knock first (spec section 13).
	SourceSeen
	// SourceFixed states ModernOptions.SourceAddr, for a client that knows
	// its outside address.
	SourceFixed
)

// String names the mode as the client configuration does.
func (m SourceMode) String() string {
	switch m {
	case SourceLocal:
		return "local"
	case SourceSeen:
		return "seen"
	case SourceFixed:
		return "fixed"
	}
	return fmt.Sprintf("SourceMode(%d)", uint8(m))
}

// Errors of the modern client.
var (
	// ErrNoKey: no private key was given; a modern knock proves the
	// knocker's key pair.
	ErrNoKey = errors.New("no private key")
	// ErrNoServerKey: the doorman's public key is unknown; a modern knock
	// is encrypted to it.
	ErrNoServerKey = errors.New("no public key for the doorman")
	// ErrSourceFamily: the stated source address is not of the family of
	// the doorman's address the knock goes to, so the doorman would refuse
	// it.
	ErrSourceFamily = errors.New("stated source address is of the other IP family")
)

// ModernOptions says what to knock for, where, and with which keys. Host,
// Service, ServerKey and Key are required; every other zero field means
// its default.
type ModernOptions struct {
	// Host is the doorman's host name or address, as in Options.
	Host string
	// Service is the TCP port to open: a number or a service name.
	Service string
	// ServerKey is the doorman's public key (doormand pubkey prints it).
	ServerKey protocol.PublicKey
	// Key is the knocker's private key; its public key is in the
	// doorman's guest list.
	Key protocol.PrivateKey
	// KnockPort is the doorman's UDP port; 0 means DefaultKnockPort.
	KnockPort uint16
	// Network is "udp" (either family, the default), "udp4" or "udp6".
	Network string
	// Resolver looks up Host and Service; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// Source says which source address the knock states; the zero value
	// is SourceLocal.
	Source SourceMode
	// SourceAddr is the address stated with SourceFixed. SendModern then
	// knocks to an address of the host of the same family.
	SourceAddr netip.Addr
	// SourcePort, when not 0, is the TCP source port the connection
	// through the door will use: the doorman then admits only that
	// 4-tuple (MODERN-12.18). Behind NAT the port is usually rewritten.
	SourcePort uint16
	// Now is the clock the knock's timestamp is taken from
	// (MODERN-12.9); nil means time.Now. The doorman refuses knocks more
	// than its time window (default 60 s) off its own clock.
	Now func() time.Time
	// Rand supplies each knock's ephemeral key; nil means crypto/rand.
	// Anything else is for test vectors only (MODERN-12.10).
	Rand io.Reader
}

// ModernResult describes a modern knock that was sent.
type ModernResult struct {
	// Request is what the knock asks for, as the doorman will read it.
	Request protocol.Request
	// Payload is the datagram sent.
	Payload []byte
	// Dest is where it went.
	Dest netip.AddrPort
	// Local is the address and port the datagram was sent from.
	Local netip.AddrPort
}

func (o *ModernOptions) knockPort() uint16 {
	if o.KnockPort == 0 {
		return DefaultKnockPort
	}
	return o.KnockPort
}

func (o *ModernOptions) ipNetwork() (string, error) {
	return (&Options{Network: o.Network}).ipNetwork()
}

// request returns the request o describes for a knock to dest sent from
// local (used by SourceLocal), stamped now.
func (o *ModernOptions) request(port uint16, dest, local netip.Addr) (protocol.Request, error) {
	now := o.clock()
	t := now().UnixNano()
	if t < 0 {
		return protocol.Request{}, fmt.Errorf("knock: clock reads %v, before 1970", now())
	}
	req := protocol.Request{Time: uint64(t), Port: port, SourcePort: o.SourcePort}
	switch o.Source {
	case SourceLocal:
		req.Source = local.Unmap().WithZone("")
	case SourceSeen:
	case SourceFixed:
		if !o.SourceAddr.IsValid() {
			return req, errors.New("knock: source mode fixed without a source address")
		}
		req.Source = o.SourceAddr.Unmap().WithZone("")
	default:
		return req, fmt.Errorf("knock: unknown %v", o.Source)
	}
	if req.Source.IsValid() && dest.IsValid() && req.Source.Is4() != dest.Unmap().Is4() {
		return req, fmt.Errorf("knock: %w: %v to %v", ErrSourceFamily, req.Source, dest)
	}
	return req, nil
}

func (o *ModernOptions) clock() func() time.Time {
	if o.Now == nil {
		return time.Now
	}
	return o.Now
}

func (o *ModernOptions) check() error {
	if o.Key.IsZero() {
		return ErrNoKey
	}
	if o.ServerKey.IsZero() {
		return ErrNoServerKey
	}
	if err := o.ServerKey.Check(); err != nil {
		return fmt.Errorf("knock: doorman's public key: %w", err)
	}
	return nil
}

func (o *ModernOptions) rand() io.Reader {
	if o.Rand == nil {
		return rand.Reader
	}
	return o.Rand
}

// BuildModern returns the modern knock o describes for a knock to dest
// sent from local, without any network traffic other than a service-name
// lookup: for dry runs and tests. local matters only with SourceLocal, and
// dest only to check the stated source's family (the zero Addr skips it).
func BuildModern(ctx context.Context, o ModernOptions, dest, local netip.Addr) (protocol.Request, []byte, error) {
	if err := o.check(); err != nil {
		return protocol.Request{}, nil, err
	}
	port, err := LookupService(ctx, o.Resolver, o.Service)
	if err != nil {
		return protocol.Request{}, nil, err
	}
	return o.seal(port, dest, local)
}

func (o *ModernOptions) seal(port uint16, dest, local netip.Addr) (protocol.Request, []byte, error) {
	req, err := o.request(port, dest, local)
	if err != nil {
		return req, nil, err
	}
	p, err := protocol.SealKnock(make([]byte, 0, protocol.ModernKnockLen), &o.Key, o.ServerKey, &req, o.rand())
	if err != nil {
		return req, nil, fmt.Errorf("knock: %w", err)
	}
	return req, p, nil
}

// SendModern builds the modern knock o describes and sends it as one UDP
// datagram (MODERN-12.3/1) to the first of the host's addresses that the
// system has a route to. The knock is built for that address once the
// socket is connected, so SourceLocal states the address the system
// actually sends from. Nothing answers a knock; use WaitOpen or DialOpen.
func SendModern(ctx context.Context, o ModernOptions) (ModernResult, error) {
	return o.knock(ctx, true)
}

// DryRunModern does all that SendModern does except send: it resolves the
// host, finds the address the system would send from (connecting a UDP
// socket sends nothing) and builds the knock for it. The result is the
// knock SendModern would have sent, valid for the doorman's time window.
func DryRunModern(ctx context.Context, o ModernOptions) (ModernResult, error) {
	return o.knock(ctx, false)
}

func (o *ModernOptions) knock(ctx context.Context, send bool) (ModernResult, error) {
	var res ModernResult
	if err := o.check(); err != nil {
		return res, err
	}
	ipnet, err := o.ipNetwork()
	if err != nil {
		return res, err
	}
	fixed := o.Source == SourceFixed && o.SourceAddr.IsValid()
	if fixed && ipnet != "ip" && (ipnet == "ip4") != o.SourceAddr.Unmap().Is4() {
		return res, fmt.Errorf("knock: %w: %v over %s", ErrSourceFamily, o.SourceAddr, o.Network)
	}
	port, err := LookupService(ctx, o.Resolver, o.Service)
	if err != nil {
		return res, err
	}
	addrs, err := ResolveHost(ctx, o.Resolver, ipnet, o.Host)
	if err != nil {
		return res, err
	}
	if fixed {
		// A stated address is of one family: knock to an address of it.
		addrs = slices.DeleteFunc(addrs, func(a netip.Addr) bool { return a.Is4() != o.SourceAddr.Unmap().Is4() })
		if len(addrs) == 0 {
			return res, fmt.Errorf("knock: %w: %s has no address of the family of %v", ErrSourceFamily, o.Host, o.SourceAddr)
		}
	}
	var errs []error
	for _, a := range addrs {
		dest := netip.AddrPortFrom(a, o.knockPort())
		r, err := o.sendTo(ctx, port, dest, send)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, ErrUnreachable) {
			break // only a missing route makes another address worth trying
		}
	}
	return res, errors.Join(errs...)
}

// sendTo connects a UDP socket to dest (which sends nothing but fixes the
// local address), builds the knock for that local address and, if send is
// set, sends it.
func (o *ModernOptions) sendTo(ctx context.Context, port uint16, dest netip.AddrPort, send bool) (ModernResult, error) {
	network := "udp6"
	if dest.Addr().Is4() {
		network = "udp4"
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, dest.String())
	if err != nil {
		return ModernResult{}, sendError(dest, err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	req, payload, err := o.seal(port, dest.Addr(), local.Addr())
	if err != nil {
		return ModernResult{}, err
	}
	res := ModernResult{Request: req, Payload: payload, Dest: dest, Local: local}
	if !send {
		return res, nil
	}
	n, err := c.Write(payload)
	if err != nil {
		return ModernResult{}, sendError(dest, err)
	}
	if n != len(payload) {
		return ModernResult{}, fmt.Errorf("knock %s: short write (%d of %d bytes)", dest, n, len(payload))
	}
	return res, nil
}
