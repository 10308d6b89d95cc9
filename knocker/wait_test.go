package knocker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func listenTCP(t *testing.T) (*net.TCPListener, uint16) {
	t.Helper()
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, uint16(l.Addr().(*net.TCPAddr).Port)
}

// closedPort returns a loopback TCP port that nothing listens on.
func closedPort(t *testing.T) uint16 {
	l, port := listenTCP(t)
	l.Close()
	return port
}

var loopback = netip.MustParseAddr("127.0.0.1")

func TestWaitOpen(t *testing.T) {
	l, port := listenTCP(t)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := WaitOpen(ctx, loopback, port, 10*time.Millisecond)
	if err != nil || d <= 0 {
		t.Fatalf("WaitOpen = %v, %v", d, err)
	}
}

func TestWaitOpenClosed(t *testing.T) {
	port := closedPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := WaitOpen(ctx, loopback, port, 20*time.Millisecond)
	if !errors.Is(err, ErrNotOpened) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("err = %v, want ErrNotOpened naming the address", err)
	}
	if ctx.Err() == nil {
		t.Error("WaitOpen gave up before its context ended")
	}
}

// TestDialOpenLate checks that a door opening after some refused attempts is
// still found, and that the connection returned is the live one.
func TestDialOpenLate(t *testing.T) {
	l, port := listenTCP(t)
	addr := l.Addr().String()
	l.Close()
	reopened := make(chan *net.TCPListener, 1)
	time.AfterFunc(150*time.Millisecond, func() {
		a, _ := net.ResolveTCPAddr("tcp4", addr)
		l2, err := net.ListenTCP("tcp4", a)
		if err != nil {
			reopened <- nil
			return
		}
		reopened <- l2
		c, err := l2.Accept()
		if err == nil {
			c.Write([]byte("hello"))
			c.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := DialOpen(ctx, loopback, port, 20*time.Millisecond)
	l2 := <-reopened
	if l2 == nil {
		t.Skip("could not listen again on the port")
	}
	defer l2.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello" {
		t.Errorf("read %q, %v", b, err)
	}
}

// echoServer accepts one connection and echoes it until the client's EOF,
// then closes.
func echoServer(t *testing.T) uint16 {
	l, port := listenTCP(t)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	return port
}

func TestProxy(t *testing.T) {
	port := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := DialOpen(ctx, loopback, port, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := strings.Repeat("SSH-2.0-test\r\n", 1000)
	var out bytes.Buffer
	if err := Proxy(ctx, c, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != in {
		t.Errorf("relayed %d bytes, want %d", out.Len(), len(in))
	}
}

func TestProxyCancel(t *testing.T) {
	l, port := listenTCP(t)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			<-stop // a peer that never answers
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := DialOpen(ctx, loopback, port, 0)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	pctx, pcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Proxy(pctx, c, pr, io.Discard) }()
	pcancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Proxy did not return after cancel")
	}
}
