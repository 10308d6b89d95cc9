package knocker

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// fallbackService answers for common names when the system has no services
// database: minimal container images and Windows often lack /etc/services.
func fallbackService(name string) (uint16, bool) {
	switch strings.ToLower(name) {
	case "ftp":
		return 21, true
	case "ssh":
		return 22, true
	case "telnet":
		return 23, true
	case "smtp":
		return 25, true
	case "http":
		return 80, true
	case "pop3":
		return 110, true
	case "imap", "imap2":
		return 143, true
	case "https":
		return 443, true
	case "submission":
		return 587, true
	case "rsync":
		return 873, true
	case "imaps":
		return 993, true
	case "pop3s":
		return 995, true
	case "mysql":
		return 3306, true
	case "rdp", "ms-wbt-server":
		return 3389, true
	case "postgresql", "postgres":
		return 5432, true
	case "vnc":
		return 5900, true
	}
	return 0, false
}

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
	if p, ok := fallbackService(service); ok {
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
