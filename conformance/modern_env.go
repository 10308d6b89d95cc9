//go:build linux

package conformance

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// mk describes a modern knock a case sends. The zero value is carol's
// knock for no port, stating the address it is sent from, made now for
// the doorman in force.
type mk struct {
	port int
	// from is the knocker's key pair; nil: carol's.
	from *keyPair
	// to is the doorman's public key; nil: the model's.
	to *[32]byte
	// at is the knock's time (Unix ns); 0: the suite's clock, later than
	// every knock before. skew is added to it.
	at   uint64
	skew time.Duration
	// asSeen states no source; src, if valid, is stated instead of the
	// address the knock is sent from.
	asSeen bool
	src    netip.Addr
	// srcPort is the stated TCP source port (0: none).
	srcPort uint16
}

// clock returns the time for the suite's next modern knock: now, in Unix
// nanoseconds, and later than every knock before (MODERN-12.9).
func (e *Env) clock() uint64 {
	t := uint64(time.Now().UnixNano())
	if t <= e.lastTime {
		t = e.lastTime + 1
	}
	e.lastTime = t
	return t
}

// guestKey returns the key pair of a modern guest of the model.
func (e *Env) guestKey(name string) *keyPair {
	k := keysOf(e.model).guests[name]
	return &k
}

// sealModern builds the knock m describes, sent from src (whose address
// is stated unless m says otherwise).
func (e *Env) sealModern(src netip.Addr, m mk) []byte {
	from := m.from
	if from == nil {
		from = e.guestKey(modernCarol)
	}
	to := keysOf(e.model).doorman.pub
	if m.to != nil {
		to = *m.to
	}
	t := m.at
	if t == 0 {
		t = e.clock()
	}
	if m.skew != 0 {
		t = uint64(int64(t) + int64(m.skew))
	}
	stated := src
	switch {
	case m.asSeen:
		stated = netip.Addr{}
	case m.src.IsValid():
		stated = m.src
	}
	var eph [32]byte
	_, _ = rand.Read(eph[:])
	d, err := sealSpec{client: *from, server: to, ephemeral: eph,
		request: newRequest(t, uint16(m.port), stated, m.srcPort).bytes()}.seal(to)
	if err != nil {
		// Only a small-order doorman key fails, and the suite has none.
		panic("conformance: sealing a modern knock: " + err.Error())
	}
	return d
}

// via is how a knock travels: from a host, over IPv4 or IPv6.
type via struct {
	h  Host
	v6 bool
}

func (v via) src() netip.Addr {
	if v.v6 {
		return v.h.Addr6
	}
	return v.h.Addr
}

func (v via) String() string { return v.src().String() }

func (e *Env) dst(v6 bool) netip.Addr {
	if v6 {
		return e.Topo.Server.Addr6
	}
	return e.server()
}

// from4 and from6 are the ways from h over IPv4 and IPv6.
func from4(h Host) via { return via{h: h} }
func from6(h Host) via { return via{h: h, v6: true} }

// sendModern builds the knock m describes and sends it from v; it returns
// the datagram, to be sent again.
func (e *Env) sendModern(v via, m mk) ([]byte, error) {
	d := e.sealModern(v.src(), m)
	return d, e.sendRaw(v, d)
}

// sendRaw sends payload from v to the knock port.
func (e *Env) sendRaw(v via, payload []byte) error {
	_, err := udpSend(v.h, e.dst(v.v6), knockPort, payload)
	return err
}

// sendMany sends the payloads from v through one socket, as fast as it
// can: a flood.
func (e *Env) sendMany(v via, payloads [][]byte) error {
	dst := e.dst(v.v6)
	var conn *net.UDPConn
	err := v.h.Do(func() error {
		c, err := net.DialUDP(family("udp", dst), nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, knockPort)))
		conn = c
		return err
	})
	if err != nil {
		return fmt.Errorf("udp from %s: %w", v.h.NS, err)
	}
	defer conn.Close()
	for _, p := range payloads {
		if _, err := conn.Write(p); err != nil {
			return fmt.Errorf("udp send from %s: %w", v.h.NS, err)
		}
	}
	return nil
}

// modernJunk returns n datagrams that pass the cheap checks of a doorman
// with public key server (the modern header, 178 bytes, a right mac1) and
// then fail to decrypt: the flood of MODERN-12.12, made by someone who
// knows the doorman's public key.
func modernJunk(server [32]byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, offMAC1)
		_, _ = rand.Read(b)
		b[0], b[1] = modernMagic, modernTypeKnock
		out[i] = append(b, mac1Of(server, b)...)
	}
	return out
}

// probe is one reachability check: port on the server's address of the
// family of v, open or closed for v's host.
type probe struct {
	v    via
	port int
	open bool
	why  string
	// control marks the probe of a control knock: its failure says the
	// daemon is not serving, not that a refusal was wrong.
	control bool
}

// probeAll runs the probes at once and joins their failures.
func (e *Env) probeAll(ps ...probe) error {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := e.dst(p.v.v6)
			if p.open {
				c, err := dialTCP(p.v.h, dst, p.port, openTimeout)
				if err != nil {
					errs[i] = mismatch(fmt.Sprintf("port %d at %s open for %s (%s)", p.port, dst, p.v, p.why), "connect failed: %v", err)
					if p.control {
						errs[i] = fmt.Errorf("control: %w", errs[i])
					}
					return
				}
				c.Close()
				return
			}
			c, err := dialTCP(p.v.h, dst, p.port, closedTimeout)
			if err == nil {
				c.Close()
				errs[i] = mismatch(fmt.Sprintf("port %d at %s closed for %s (%s)", p.port, dst, p.v, p.why), "connection established")
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// modernControl sends carol's fresh knock from the client that is not h
// for a port no step before used, and returns the probe that it opened:
// with it, a closed port is a refusal by a daemon that is alive and
// serving modern knocks (CLASSIC-4.8).
func (e *Env) modernControl(h Host, port int) (probe, error) {
	other := e.Topo.Client
	if h == e.Topo.Client {
		other = e.Topo.Client2
	}
	cport := portB
	if port == portB {
		cport = portA
	}
	_, err := e.sendModern(from4(other), mk{port: cport})
	return probe{v: from4(other), port: cport, open: true, why: "a fresh modern knock", control: true}, err
}

// closedModern checks that port stays closed for v after what was sent,
// with a modern control at the same time.
func (e *Env) closedModern(v via, port int, why string) error {
	ctl, err := e.modernControl(v.h, port)
	if err != nil {
		return err
	}
	time.Sleep(settle)
	return e.probeAll(probe{v: v, port: port, why: why}, ctl)
}
