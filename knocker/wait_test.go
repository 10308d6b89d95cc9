package knocker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/knocker/knockertest"
	"github.com/doorman-project/doorman/protocol"
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

// TestKnockReady: KnockReady confirms the first door by using it, and the
// fresh door it knocked for takes the caller's one connection, made right
// after it returns and without retries (CLASSIC-11.6/1).
func TestKnockReady(t *testing.T) {
	f := knockertest.NewDoorman(t, "s3cretKnock", 5*time.Second)
	o := Options{Host: "127.0.0.1", Service: fmt.Sprint(f.DoorPort), Group: "alice",
		Secret: protocol.Secret("s3cretKnock"), KnockPort: f.KnockPort}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := KnockReady(ctx, o, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.First.Knock.Tag == r.Second.Knock.Tag || r.First.Dest != r.Second.Dest || r.Second.Port != f.DoorPort || r.Opened <= 0 {
		t.Fatalf("KnockReady = %+v", r)
	}
	c, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", fmt.Sprint(f.DoorPort)), time.Second)
	if err != nil {
		t.Fatalf("the caller's connection after KnockReady: %v (events %q)", err, f.Events())
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(io.LimitReader(c, 7)); string(b) != "door 2\n" {
		t.Fatalf("the caller got %q, %v; want the second door", b, err)
	}
	want := []string{fmt.Sprintf("knock %d", r.First.Knock.Tag), "conn 1", fmt.Sprintf("knock %d", r.Second.Knock.Tag), "conn 2"}
	if got := f.Events(); !slices.Equal(got, want) {
		t.Fatalf("doorman saw %q, want %q", got, want)
	}
}

// TestKnockReadyNotOpened: when no door opens there is no second knock
// (CLASSIC-11.6/2).
func TestKnockReadyNotOpened(t *testing.T) {
	f := knockertest.NewDoorman(t, "s3cretKnock", 5*time.Second)
	o := Options{Host: "127.0.0.1", Service: fmt.Sprint(f.DoorPort), Group: "alice",
		Secret: protocol.Secret("wrong"), KnockPort: f.KnockPort}
	r, err := KnockReady(context.Background(), o, 300*time.Millisecond)
	if !errors.Is(err, ErrNotOpened) || r.First.Payload == nil || r.Second.Payload != nil {
		t.Fatalf("KnockReady = %+v, %v; want ErrNotOpened after one knock", r, err)
	}
	time.Sleep(50 * time.Millisecond)
	if ev := f.Events(); len(ev) != 0 {
		t.Errorf("doorman saw %q", ev)
	}

	tag := uint32(1)
	o.Tag = &tag
	if _, err := KnockReady(context.Background(), o, time.Second); !errors.Is(err, ErrFixedTag) {
		t.Errorf("fixed tag: err = %v, want ErrFixedTag", err)
	}
}

// TestWaitOpenSpendsTheDoor shows why KnockReady knocks twice: a door that
// WaitOpen confirmed has no connection left for the caller.
func TestWaitOpenSpendsTheDoor(t *testing.T) {
	f := knockertest.NewDoorman(t, "s3cretKnock", 5*time.Second)
	o := Options{Host: "127.0.0.1", Service: fmt.Sprint(f.DoorPort), Group: "alice",
		Secret: protocol.Secret("s3cretKnock"), KnockPort: f.KnockPort}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := Send(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WaitOpen(ctx, res.Dest.Addr(), res.Port, 0); err != nil {
		t.Fatal(err)
	}
	// The fake closes its door once it has accepted the probe; WaitOpen
	// may return a moment before that, while a real door is spent in the
	// kernel at once.
	for !slices.Contains(f.Events(), "conn 1") {
		if ctx.Err() != nil {
			t.Fatal("the fake doorman never saw the probe")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", fmt.Sprint(f.DoorPort)), time.Second); err == nil {
		c.Close()
		t.Fatal("a second connection got through a door that admits one")
	}
}

// TestKnockReadyModern: as TestKnockReady, with modern knocks. The clock
// is frozen, so the second knock's time is later than the first's only
// because KnockReadyModern makes it so: a doorman refuses a knock not
// later than the last it accepted from the key (MODERN-12.9, MODERN-12.17).
func TestKnockReadyModern(t *testing.T) {
	client, server := modernKeys(t)
	f := knockertest.NewModernDoorman(t, &server, client.Public(), 5*time.Second)
	frozen := time.Now()
	o := ModernOptions{Host: "127.0.0.1", Service: fmt.Sprint(f.DoorPort), ServerKey: server.Public(), Key: client,
		KnockPort: f.KnockPort, Now: func() time.Time { return frozen }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := KnockReadyModern(ctx, o, 5*time.Second)
	if err != nil {
		t.Fatalf("%v (doorman saw %q)", err, f.Events())
	}
	if r.Second.Request.Time != r.First.Request.Time+1 || r.First.Dest != r.Second.Dest || r.First.Local.Addr() != r.Second.Local.Addr() ||
		r.Second.Request.Source != netip.MustParseAddr("127.0.0.1") || r.Second.Request.Port != f.DoorPort || r.Opened <= 0 {
		t.Fatalf("KnockReadyModern = %+v", r)
	}
	c, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", fmt.Sprint(f.DoorPort)), time.Second)
	if err != nil {
		t.Fatalf("the caller's connection after KnockReadyModern: %v (events %q)", err, f.Events())
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(io.LimitReader(c, 7)); string(b) != "door 2\n" {
		t.Fatalf("the caller got %q, %v; want the second door", b, err)
	}
	want := []string{fmt.Sprintf("knock %d", r.First.Request.Time), "conn 1", fmt.Sprintf("knock %d", r.Second.Request.Time), "conn 2"}
	if got := f.Events(); !slices.Equal(got, want) {
		t.Fatalf("doorman saw %q, want %q", got, want)
	}
}

// TestKnockReadyModernNotOpened: a knock with a key the doorman does not
// know opens nothing, and no second knock follows (CLASSIC-11.6/2).
func TestKnockReadyModernNotOpened(t *testing.T) {
	client, server := modernKeys(t)
	stranger, _ := modernKeys(t)
	f := knockertest.NewModernDoorman(t, &server, stranger.Public(), 5*time.Second)
	o := ModernOptions{Host: "127.0.0.1", Service: fmt.Sprint(f.DoorPort), ServerKey: server.Public(), Key: client, KnockPort: f.KnockPort}
	r, err := KnockReadyModern(context.Background(), o, 300*time.Millisecond)
	if !errors.Is(err, ErrNotOpened) || r.First.Payload == nil || r.Second.Payload != nil {
		t.Fatalf("KnockReadyModern = %+v, %v; want ErrNotOpened after one knock", r, err)
	}
	if ev := f.Events(); len(ev) != 0 {
		t.Errorf("doorman saw %q", ev)
	}
	o.Key = protocol.PrivateKey{}
	if _, err := KnockReadyModern(context.Background(), o, time.Second); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v", err)
	}
}
