// Package knockertest provides a loopback stand-in for a doorman, for tests
// of clients that need no root: see Doorman.
package knockertest

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/doorman-project/doorman/protocol"
)

// Doorman is a loopback stand-in for a doorman that has doors: every
// knock that verifies opens the door port for exactly one connection, the
// way a doormand door admits one connection (CLASSIC-6.2), and the door
// closes again after waitfor if nobody comes. Doors open one after another
// in knock order. The connection of door n is greeted with "door n\n".
//
// Without root there is no firewall to open, so a door is a listener that
// exists only while the door is open: a connection attempt at any other
// time is refused.
type Doorman struct {
	// KnockPort is the UDP port knocks go to, DoorPort the TCP port they
	// must ask for.
	KnockPort, DoorPort uint16

	mu     sync.Mutex
	events []string // "knock <tag or time>", "conn <door>", "expired <door>", in order
}

// NewDoorman starts a Doorman for the group secret on 127.0.0.1; knocks
// must ask for its DoorPort. Everything stops at the test's cleanup.
func NewDoorman(t testing.TB, secret string, waitfor time.Duration) *Doorman {
	t.Helper()
	return newDoorman(t, waitfor, func(p []byte, _ netip.AddrPort, port uint16) (string, bool) {
		var k protocol.Knock
		if protocol.ParseKnock(p, &k) != nil || !k.VerifyMAC(protocol.Secret(secret)) || k.Port != port {
			return "", false
		}
		return fmt.Sprint(k.Tag), true
	})
}

// NewModernDoorman starts a Doorman on 127.0.0.1 for modern knocks to the
// doorman key server from the guest key guest. It accepts a knock as a
// doormand would (MODERN-12.11): one that opens under server's key, is from
// guest, is within protocol.DefaultModernWindow of the clock, came from
// its stated source, asks for DoorPort and is later than the last it
// accepted. The knock's event is "knock <time>".
func NewModernDoorman(t testing.TB, server *protocol.PrivateKey, guest protocol.PublicKey, waitfor time.Duration) *Doorman {
	t.Helper()
	opener := protocol.NewOpener(server)
	var last uint64
	return newDoorman(t, waitfor, func(p []byte, from netip.AddrPort, port uint16) (string, bool) {
		k, err := opener.Open(p)
		if err != nil || k.Client != guest || k.Port != port || k.Time <= last {
			return "", false
		}
		if _, err := protocol.CheckTime(k.Time, time.Now(), protocol.DefaultModernWindow); err != nil {
			return "", false
		}
		if _, err := k.Door(from.Addr()); err != nil {
			return "", false
		}
		last = k.Time
		return fmt.Sprint(k.Time), true
	})
}

// newDoorman starts a Doorman whose knocks are checked by accept, which
// returns what the knock event names.
func newDoorman(t testing.TB, waitfor time.Duration, accept func(payload []byte, from netip.AddrPort, doorPort uint16) (string, bool)) *Doorman {
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	// A free port for the door: taken, noted and released.
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &Doorman{KnockPort: uint16(udp.LocalAddr().(*net.UDPAddr).Port), DoorPort: uint16(l.Addr().(*net.TCPAddr).Port)}
	l.Close()

	doors := make(chan int, 16)
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { udp.Close(); close(done); wg.Wait() })
	wg.Add(2)
	go func() { // knocks
		defer wg.Done()
		defer close(doors)
		n := 0
		buf := make([]byte, 512)
		for {
			m, from, err := udp.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			what, ok := accept(buf[:m], from, f.DoorPort)
			if !ok {
				continue
			}
			f.event("knock %s", what)
			n++
			doors <- n
		}
	}()
	go func() { // doors, one at a time
		defer wg.Done()
		for n := range doors {
			f.serveDoor(t, n, waitfor, done)
		}
	}()
	return f
}

func (f *Doorman) serveDoor(t testing.TB, n int, waitfor time.Duration, done <-chan struct{}) {
	var l *net.TCPListener
	var err error
	for range 50 { // the previous door's port may take a moment to be free
		if l, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(f.DoorPort)}); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("fake door %d: %v", n, err)
		return
	}
	defer l.Close()
	served := make(chan struct{})
	defer close(served)
	go func() {
		select {
		case <-done:
			l.Close()
		case <-served:
		}
	}()
	l.SetDeadline(time.Now().Add(waitfor))
	c, err := l.Accept()
	if err != nil {
		f.event("expired %d", n)
		return
	}
	l.Close() // one connection per door
	f.event("conn %d", n)
	fmt.Fprintf(c, "door %d\n", n)
	go func() {
		<-done
		c.Close()
	}()
}

func (f *Doorman) event(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, fmt.Sprintf(format, a...))
}

// Events returns what happened so far, in order.
func (f *Doorman) Events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.events...)
}
