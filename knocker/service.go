package knocker

import (
	"context"
	"fmt"
	"github.com/doorman-project/doorman/protocol"
	"net"
	"strconv"
)

// LookupService returns the TCP port service names: a decimal number
// 1-65535, a name the system's services database knows (looked up through r;
// nil means net.DefaultResolver), or a common name from a built-in table.
// The error wraps ErrUnknownService.
func LookupService(ctx context.Context, r *net.Resolver, service string) (uint16, error) {
	if service == "" {
		return 0, fmt.Errorf("%w: empty service", ErrUnknownService)
	}
	if isDigits(service) {
		n, err := strconv.ParseUint(service, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("%w %q: port must be 1-65535", ErrUnknownService, service)
		}
		return uint16(n), nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	p, err := r.LookupPort(ctx, "tcp", service)
	if err == nil && p > 0 && p <= 65535 {
		return uint16(p), nil
	}
	if p, ok := protocol.WellKnownPort(service); ok {
		return p, nil
	}
	return 0, fmt.Errorf("%w %q: not a port number or a known service name", ErrUnknownService, service)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
