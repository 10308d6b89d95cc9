package service

import (
	"fmt"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// The service's reports to systemd (sd_notify(3)), for the unit's
// Type=notify: READY=1 only once the firewall is in place and knocks are
// received, RELOADING=1 and READY=1 around a reload, STOPPING=1 at stop,
// and a STATUS= line that `systemctl status` shows, which says when a
// reload was refused. Without NOTIFY_SOCKET (not under systemd) they cost
// nothing.

// notify sends the newline-separated assignments to systemd.
func (s *Service) notify(assignments ...string) {
	if _, err := sd.SdNotify(false, strings.Join(assignments, "\n")); err != nil {
		s.log.Debug("cannot notify systemd", "err", err)
	}
}

// notifyReloading says a reload started; notifyReady must follow.
func (s *Service) notifyReloading() {
	s.notify(sd.SdNotifyReloading, strings.TrimSuffix(sd.SdNotifyMonotonicUsec(), "\n"))
}

// notifyReady says the service is ready, with its status line.
func (s *Service) notifyReady(format string, args ...any) {
	s.notify(sd.SdNotifyReady, "STATUS="+oneLine(fmt.Sprintf(format, args...)))
}

// reloadFailedStatus is the status line after a refused reload: it stays
// until the next reload, so that `systemctl status` shows it.
func reloadFailedStatus(err error) string {
	return fmt.Sprintf("reload refused at %s, old configuration in force: %v", time.Now().Format(time.TimeOnly), err)
}

// oneLine keeps a status to one line: systemd takes the rest as more
// assignments.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
