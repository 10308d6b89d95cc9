package knocker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/doorman-project/doorman/protocol"
)

// DefaultKnockPort is the UDP port a doorman listens on unless configured
// otherwise, as in 0.81 (CLASSIC-2.7).
const DefaultKnockPort = 1001

// Options says what to knock for and where. The zero value of every field
// means its default; Host, Service, Group and Secret are required by Send.
type Options struct {
	// Host is the doorman's host name or address (IPv4 or IPv6, an IPv6
	// literal may be in brackets and may carry a zone).
	Host string
	// Service is the TCP port to open: a number or a service name.
	Service string
	// Group is the guest-list group (guest) name.
	Group string
	// Secret is the group's shared secret.
	Secret protocol.Secret
	// KnockPort is the doorman's UDP port; 0 means DefaultKnockPort.
	KnockPort uint16
	// Network is "udp" (either family, the default), "udp4" or "udp6".
	Network string
	// Resolver looks up Host and Service; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// Tag, when not nil, replaces the fresh random tag. It exists for test
	// vectors and dry runs only: a repeated tag repeats the MAC, which a
	// doorman refuses as a replay, and a predictable one defeats CLASSIC-3.3/1.
	Tag *uint32
}

// Result describes a knock that was sent.
type Result struct {
	Knock   protocol.Knock
	Payload []byte
	// Dest is where the datagram went.
	Dest netip.AddrPort
	// Port is the TCP port the knock asks to open.
	Port uint16
}

func (o *Options) knockPort() uint16 {
	if o.KnockPort == 0 {
		return DefaultKnockPort
	}
	return o.KnockPort
}

// ipNetwork maps Options.Network to the resolver's network name.
func (o *Options) ipNetwork() (string, error) {
	switch o.Network {
	case "", "udp":
		return "ip", nil
	case "udp4":
		return "ip4", nil
	case "udp6":
		return "ip6", nil
	}
	return "", fmt.Errorf("knock: network %q is not udp, udp4 or udp6", o.Network)
}

// Build returns the knock o describes and its UDP payload, without any
// network traffic other than a service-name lookup. The tag is fresh from
// NewTag unless o.Tag is set.
func Build(o Options) (protocol.Knock, []byte, error) {
	return build(context.Background(), &o)
}

func build(ctx context.Context, o *Options) (protocol.Knock, []byte, error) {
	var k protocol.Knock
	if err := CheckGroup(o.Group); err != nil {
		return k, nil, err
	}
	if len(o.Secret) == 0 {
		return k, nil, ErrNoSecret
	}
	port, err := LookupService(ctx, o.Resolver, o.Service)
	if err != nil {
		return k, nil, err
	}
	var tag uint32
	if o.Tag != nil {
		tag = *o.Tag
	} else if tag, err = NewTag(); err != nil {
		return k, nil, err
	}
	k, err = protocol.NewKnock(port, o.Group, tag, o.Secret)
	if err != nil {
		return k, nil, fmt.Errorf("knock: %w", err)
	}
	return k, k.AppendPayload(make([]byte, 0, protocol.MaxClassicLen)), nil
}

// CheckGroup reports whether group can be sent: 1 to 32 characters of the
// guest-name alphabet (CLASSIC-2.2/1). The error wraps ErrBadGroup.
func CheckGroup(group string) error {
	if len(group) == 0 || len(group) > protocol.MaxGroupLen || !protocol.ValidName(group) {
		return fmt.Errorf("%w: %q", ErrBadGroup, group)
	}
	return nil
}

// Send builds the knock o describes and sends it as one UDP datagram to the
// first of the host's addresses that the system has a route to. Nothing
// answers a knock; use WaitOpen or DialOpen to learn whether it worked.
func Send(ctx context.Context, o Options) (Result, error) {
	var res Result
	ipnet, err := o.ipNetwork()
	if err != nil {
		return res, err
	}
	k, payload, err := build(ctx, &o)
	if err != nil {
		return res, err
	}
	addrs, err := ResolveHost(ctx, o.Resolver, ipnet, o.Host)
	if err != nil {
		return res, err
	}
	var errs []error
	for _, a := range addrs {
		dest := netip.AddrPortFrom(a, o.knockPort())
		err := sendTo(ctx, dest, payload)
		if err == nil {
			return Result{Knock: k, Payload: payload, Dest: dest, Port: k.Port}, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, ErrUnreachable) {
			break // only a missing route makes another address worth trying
		}
	}
	return res, errors.Join(errs...)
}

// sendTo sends payload as one datagram to dest.
func sendTo(ctx context.Context, dest netip.AddrPort, payload []byte) error {
	network := "udp6"
	if dest.Addr().Is4() {
		network = "udp4"
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, dest.String())
	if err != nil {
		return sendError(dest, err)
	}
	defer c.Close()
	n, err := c.Write(payload)
	if err != nil {
		return sendError(dest, err)
	}
	if n != len(payload) {
		return fmt.Errorf("knock %s: short write (%d of %d bytes)", dest, n, len(payload))
	}
	return nil
}

func sendError(dest netip.AddrPort, err error) error {
	if isUnreachable(err) {
		return fmt.Errorf("knock %s: %w (%w)", dest, ErrUnreachable, err)
	}
	return fmt.Errorf("knock %s: %w", dest, err)
}

func isUnreachable(err error) bool {
	return errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.EADDRNOTAVAIL)
}

// ResolveHost returns host's addresses of the IP network ipnet ("ip", "ip4"
// or "ip6"), literals without a lookup. IPv4-mapped IPv6 addresses come back
// as IPv4. The error wraps ErrUnknownHost.
func ResolveHost(ctx context.Context, r *net.Resolver, ipnet, host string) ([]netip.Addr, error) {
	h := host
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == "" {
		return nil, fmt.Errorf("%w: empty host name", ErrUnknownHost)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(h); err == nil {
		addrs = []netip.Addr{a.Unmap()}
	} else {
		if r == nil {
			r = net.DefaultResolver
		}
		found, err := r.LookupNetIP(ctx, ipnet, h)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrUnknownHost, host, err)
		}
		for _, a := range found {
			addrs = append(addrs, a.Unmap())
		}
	}
	var keep []netip.Addr
	for _, a := range addrs {
		if ipnet == "ip" || (ipnet == "ip4") == a.Is4() {
			keep = append(keep, a)
		}
	}
	if len(keep) == 0 {
		fam := "IPv4"
		if ipnet == "ip6" {
			fam = "IPv6"
		}
		return nil, fmt.Errorf("%w %q: no %s address", ErrUnknownHost, host, fam)
	}
	return keep, nil
}
