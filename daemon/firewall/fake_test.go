package firewall

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func fakeDoor(id uint64, s DoorState, sport uint16) Door {
	return Door{ID: id, Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.18.0.1"), Port: 22,
		SrcPort: sport, State: s, Expires: time.Now().Add(time.Minute)}
}

func TestFake(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	if err := f.Apply(ctx, []Door{fakeDoor(1, DoorArmed, 0)})[0]; !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Apply before Start: %v", err)
	}
	var claims []Claim
	if err := f.Start(ctx, Notify{Claim: func(c Claim) { claims = append(claims, c) }}); err != nil {
		t.Fatal(err)
	}
	apply := func(d Door) error { return f.Apply(ctx, []Door{d})[0] }
	if err := apply(fakeDoor(1, DoorNarrow, 4000)); !errors.Is(err, ErrTransition) {
		t.Fatalf("closed to narrow: %v, want ErrTransition", err)
	}
	if err := apply(fakeDoor(1, DoorArmed, 0)); err != nil {
		t.Fatal(err)
	}
	if err := apply(fakeDoor(2, DoorArmed, 0)); !errors.Is(err, ErrTransition) {
		t.Fatalf("second armed door of one key: %v, want ErrTransition", err)
	}
	f.Claim(Claim{SrcPort: 4000})
	if len(claims) != 1 || claims[0].SrcPort != 4000 {
		t.Fatalf("claims: %+v", claims)
	}
	for _, s := range []DoorState{DoorClaimed, DoorNarrow} {
		if err := apply(fakeDoor(1, s, 4000)); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.Doors(); len(got) != 1 || got[0].State != DoorNarrow {
		t.Fatalf("doors: %+v", got)
	}
	boom := errors.New("boom")
	f.FailNext(boom)
	err := apply(fakeDoor(1, DoorClosed, 4000))
	var de *DoorError
	if !errors.Is(err, boom) || !errors.As(err, &de) || de.Backend != "fake" {
		t.Fatalf("FailNext: %v", err)
	}
	if err := apply(fakeDoor(1, DoorClosed, 4000)); err != nil {
		t.Fatal(err)
	}
	if len(f.Doors()) != 0 {
		t.Fatal("door held after closing")
	}
	if got := len(f.Calls()); got != 8 {
		t.Fatalf("%d calls recorded, want 8", got)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFakeConcurrent(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	if err := f.Start(ctx, Notify{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := fakeDoor(uint64(i+1), DoorArmed, 0)
			d.Port = uint16(1000 + i)
			if err := errors.Join(f.Apply(ctx, []Door{d})...); err != nil {
				t.Error(err)
			}
			d.State = DoorClosed
			if err := errors.Join(f.Apply(ctx, []Door{d})...); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(f.Doors()); n != 0 {
		t.Fatalf("%d doors left", n)
	}
}
