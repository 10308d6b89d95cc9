package protocol

import "strings"

// WellKnownPort is the built-in table of common TCP service names, for a
// guest list's ports (CLASSIC-9.2) and a knocker's service argument
// (CLASSIC-11.2) when the system has no services database: minimal images
// and Windows often lack /etc/services. Names match without regard to case,
// as Go's /etc/services lookup does.
func WellKnownPort(service string) (uint16, bool) {
	switch strings.ToLower(service) {
	case "ftp":
		return 21, true
	case "ssh":
		return 22, true
	case "telnet":
		return 23, true
	case "smtp":
		return 25, true
	case "domain":
		return 53, true
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
