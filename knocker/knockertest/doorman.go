// Package knockertest provides a loopback stand-in for a doorman, for tests
// of clients that need no root: see Doorman.
package knockertest

import (
	"fmt"
	"net"
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
	events []string // "knock <tag>", "conn <door>", "expired <door>", in order
}

// NewDoorman starts a Doorman for the group secret on 127.0.0.1; knocks
// must ask for its DoorPort. Everything stops at the test's cleanup.
func NewDoorman(t testing.TB, secret string, waitfor time.Duration) *Doorman {
	t.Helper()
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
			m, err := udp.Read(buf)
			if err != nil {
				return
			}
			var k protocol.Knock
			if protocol.ParseKnock(buf[:m], &k) != nil || !k.VerifyMAC(protocol.Secret(secret)) || k.Port != f.DoorPort {
				continue
			}
			f.event("knock %d", k.Tag)
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
