package config

import (
	"context"
	"errors"
	"fmt"
	"github.com/doorman-project/doorman/protocol"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Resolver turns service names into TCP ports and host names into addresses
// while a guest list (or the protect keyword) is read. A nil Resolver given
// to the parsers means NetResolver{}.
type Resolver interface {
	// LookupPort returns the TCP port of a service name such as "ssh".
	LookupPort(service string) (uint16, error)
	// LookupHost returns every address of a host name.
	LookupHost(host string) ([]netip.Addr, error)
}

// ErrUnknownService and ErrUnknownHost are returned (wrapped) by the
// resolvers in this package for names they do not know.
var (
	ErrUnknownService = errors.New("unknown service name")
	ErrUnknownHost    = errors.New("unknown host")
)

// NetResolver is the system resolver: service names from /etc/services
// (net.LookupPort) with protocol.WellKnownPort as a fallback, because minimal images
// often lack /etc/services; host names through net.DefaultResolver.
type NetResolver struct {
	// Timeout bounds one host lookup; 0 means 10 seconds.
	Timeout time.Duration
}

var (
	_ Resolver = NetResolver{}
	_ Resolver = StaticResolver{}
)

// LookupPort implements Resolver.
func (NetResolver) LookupPort(service string) (uint16, error) {
	if !serviceSyntax(service) {
		return 0, fmt.Errorf("%q: %w", service, ErrUnknownService)
	}
	if p, err := net.LookupPort("tcp", service); err == nil && p > 0 && p <= 65535 {
		return uint16(p), nil
	}
	if p, ok := protocol.WellKnownPort(service); ok {
		return p, nil
	}
	return 0, fmt.Errorf("%q: %w", service, ErrUnknownService)
}

// LookupHost implements Resolver. IPv4-mapped IPv6 answers are returned as
// IPv4 addresses.
func (r NetResolver) LookupHost(host string) ([]netip.Addr, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// StaticResolver is a map-based Resolver for tests and for callers that must
// not touch the network. Service names not in Ports fall back to
// protocol.WellKnownPort; host names not in Hosts are unknown.
type StaticResolver struct {
	Ports map[string]uint16
	Hosts map[string][]netip.Addr
}

// LookupPort implements Resolver.
func (r StaticResolver) LookupPort(service string) (uint16, error) {
	if p, ok := r.Ports[service]; ok {
		return p, nil
	}
	if p, ok := protocol.WellKnownPort(service); ok {
		return p, nil
	}
	return 0, fmt.Errorf("%q: %w", service, ErrUnknownService)
}

// LookupHost implements Resolver.
func (r StaticResolver) LookupHost(host string) ([]netip.Addr, error) {
	if a, ok := r.Hosts[host]; ok && len(a) > 0 {
		return append([]netip.Addr(nil), a...), nil
	}
	return nil, fmt.Errorf("%q: %w", host, ErrUnknownHost)
}

// serviceSyntax reports whether s could be an /etc/services name: it starts
// with a letter and holds only letters, digits and "-_.+/*". It keeps
// addresses and junk away from the lookup.
func serviceSyntax(s string) bool {
	if s == "" || len(s) > 64 || !isLetter(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !isDigit(c) && !strings.ContainsRune("-_.+/*", rune(c)) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
