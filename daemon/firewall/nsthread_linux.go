//go:build linux

package firewall

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// nsPin remembers the network namespace a backend started in, so that the
// programs it runs later from its own goroutines (iptables, the 0.81
// scripts) run there too. In a daemon every thread is in that namespace
// and nothing is ever switched (which would need CAP_SYS_ADMIN); only
// tests, which start backends from threads switched into a namespace of
// their own, need the switch, and they have the privilege.
type nsPin struct{ h netns.NsHandle }

// pinNS records the calling thread's namespace.
func pinNS() (nsPin, error) {
	h, err := netns.Get()
	if err != nil {
		return nsPin{}, fmt.Errorf("read network namespace: %w", err)
	}
	return nsPin{h: h}, nil
}

// do runs fn on a thread in the pinned namespace.
func (p nsPin) do(fn func() error) error {
	runtime.LockOSThread()
	cur, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("read network namespace: %w", err)
	}
	defer cur.Close()
	if cur.Equal(p.h) {
		defer runtime.UnlockOSThread()
		return fn()
	}
	if err := netns.Set(p.h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	ferr := fn()
	if err := netns.Set(cur); err != nil {
		// The thread stays locked and dies with this goroutine rather than
		// run other goroutines in the wrong namespace.
		return fmt.Errorf("leave network namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// close releases the namespace handle.
func (p nsPin) close() {
	if p.h.IsOpen() {
		p.h.Close()
	}
}
