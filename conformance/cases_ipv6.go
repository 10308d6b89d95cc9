//go:build linux

package conformance

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Cases for CLASSIC-2.7: knocks over both address families.
func ipv6Cases() []*Case {
	return []*Case{
		{ID: "2.7/ipv6-knock", Requirement: "CLASSIC-2.7", Level: "MUST", Target: TargetDaemon,
			Description: "a valid knock sent over IPv6 opens the port for the client over IPv6 (closed before it, and not for a foreign host that knocked over IPv6); a knock over IPv4 still opens it over IPv4",
			Run:         runIPv6Knock},
	}
}

func runIPv6Knock(e *Env) error {
	t := e.Topo
	srv6 := t.Server.Addr6
	// A foreign host's valid knock over IPv6 must not let it in: the guest
	// networks hold the clients' IPv6 addresses only.
	if _, err := udpSend(t.Foreign, srv6, knockPort, []byte(knockFor(portA))); err != nil {
		return err
	}
	time.Sleep(settle)
	checks := []struct {
		h   Host
		why string
	}{
		{t.Client, "over IPv6 before the client knocked"},
		{t.Foreign, "over IPv6 after a knock from a foreign host"},
	}
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = expectClosedAt(c.h, c.h.Addr6, srv6, portA, c.why) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if _, err := udpSend(t.Client, srv6, knockPort, []byte(knockFor(portA))); err != nil {
		return err
	}
	time.Sleep(settle)
	c, err := dialTCP(t.Client, srv6, portA, openTimeout)
	if err != nil {
		return mismatch(fmt.Sprintf("port %d open over IPv6 for %s after its knock to [%s]:%d", portA, t.Client.Addr6, srv6, knockPort),
			"connect failed: %v", err)
	}
	c.Close()
	return e.control(portA)
}

// expectClosedAt checks that a TCP connection from h (source src) to
// dst:port fails.
func expectClosedAt(h Host, src, dst netip.Addr, port int, why string) error {
	c, err := dialTCP(h, dst, port, closedTimeout)
	if err == nil {
		c.Close()
		return mismatch(fmt.Sprintf("port %d at %s closed for %s (%s)", port, dst, src, why), "connection established")
	}
	return nil
}
