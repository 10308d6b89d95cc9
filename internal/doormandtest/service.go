package doormandtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Greeting is what Serve's service says to every connection.
const Greeting = "hello\n"

// Serve starts a TCP service on addr inside h that sends Greeting and then
// reads until the client closes: the service behind a door, in which a
// connection that says hello got through. It stops when ctx ends.
func Serve(ctx context.Context, h Host, addr netip.AddrPort) error {
	var l net.Listener
	err := h.Do(func() error {
		var err error
		l, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("service on %v: %w", addr, err)
	}
	context.AfterFunc(ctx, func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte(Greeting))
				buf := make([]byte, 64)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return nil
}

// Dial connects from h to a Serve service at dst within connect and reads
// the greeting within read; it returns nil if either fails (a closed
// door drops the SYN, so the dial times out).
func Dial(h Host, dst netip.AddrPort, connect, read time.Duration) net.Conn {
	var c net.Conn
	h.Do(func() error {
		var err error
		if c, err = net.DialTimeout("tcp", dst.String(), connect); err != nil {
			c = nil
			return err
		}
		c.SetReadDeadline(time.Now().Add(read))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != Greeting {
			c.Close()
			c = nil
			return nil
		}
		c.SetReadDeadline(time.Time{})
		return nil
	})
	return c
}
