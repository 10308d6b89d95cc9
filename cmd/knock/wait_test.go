package main

import (
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/knocker/knockertest"
)

// TestWaitLeavesAFreshDoor is the README's "knock --wait host ssh && ssh
// host" against a stand-in doorman whose doors admit one connection each:
// the connection made after knock exits gets a door of its own
// (CLASSIC-11.6/1).
func TestWaitLeavesAFreshDoor(t *testing.T) {
	d := knockertest.NewDoorman(t, "s3cretKnock", 5*time.Second)
	door := fmt.Sprint(d.DoorPort)
	r := knock(t, "", "", "-v", "-g", "alice", "-s", "s3cretKnock", "-p", fmt.Sprint(d.KnockPort), "--wait", "127.0.0.1", door)
	if r.code != 0 || !regexp.MustCompile(`^open after [0-9]+ ms\n$`).MatchString(r.stdout) {
		t.Fatalf("--wait: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := strings.Count(r.stderr, "knock: sent \""+door+" alice "); n != 2 {
		t.Errorf("verbose output reports %d knocks, want 2: %q", n, r.stderr)
	}
	if !strings.Contains(r.stderr, "a fresh door waits for your connection to 127.0.0.1 port "+door) {
		t.Errorf("stderr %q does not tell what to do next", r.stderr)
	}

	// The user's connection: one attempt, as ssh makes it.
	c, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", door), 2*time.Second)
	if err != nil {
		t.Fatalf("connecting after knock --wait: %v (doorman saw %q)", err, d.Events())
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(io.LimitReader(c, 7)); string(b) != "door 2\n" {
		t.Fatalf("the user's connection got %q, want the second door", b)
	}
	ev := d.Events()
	if len(ev) != 4 || !strings.HasPrefix(ev[0], "knock ") || ev[1] != "conn 1" || !strings.HasPrefix(ev[2], "knock ") || ev[3] != "conn 2" || ev[0] == ev[2] {
		t.Errorf("doorman saw %q; want knock, probe, a fresh knock, the user", ev)
	}
}

// TestWaitNoDoor: a knock that opens nothing gives exit 1, the hint, and
// no second knock (CLASSIC-11.6/2).
func TestWaitNoDoor(t *testing.T) {
	d := knockertest.NewDoorman(t, "s3cretKnock", 5*time.Second)
	r := knock(t, "", "", "-g", "alice", "-s", "wrong", "-p", fmt.Sprint(d.KnockPort), "--wait=300ms", "127.0.0.1", fmt.Sprint(d.DoorPort))
	if r.code != exitNotOpen || r.stdout != "" || r.stderr != notOpened+"\n" {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if ev := d.Events(); len(ev) != 0 {
		t.Errorf("doorman saw %q", ev)
	}
}
