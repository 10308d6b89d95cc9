package firewall

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

func fakeRule(sport uint16) Rule {
	return Rule{Iface: "veth0", Src: netip.MustParseAddr("198.18.0.2"), SrcPort: sport, Dst: netip.MustParseAddr("198.18.0.1"), DstPort: 22}
}

func TestFake(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	if err := f.Add(ctx, fakeRule(0)); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Add before Start: %v", err)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	broad, narrow := fakeRule(0), fakeRule(40000)
	for _, r := range []Rule{broad, narrow, broad} {
		if err := f.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.Rules(); !slices.Equal(got, []Rule{broad, narrow, broad}) {
		t.Fatalf("Rules() = %v", got)
	}
	if err := f.Delete(ctx, broad); err != nil {
		t.Fatal(err)
	}
	if got := f.Rules(); !slices.Equal(got, []Rule{broad, narrow}) {
		t.Fatalf("after one Delete of a doubled rule: %v", got)
	}

	boom := errors.New("boom")
	f.FailNext(boom)
	err := f.Delete(ctx, narrow)
	var re *RuleError
	if !errors.Is(err, boom) || !errors.As(err, &re) || re.Rule != narrow || re.Backend != "fake" {
		t.Fatalf("FailNext: got %v", err)
	}
	if got := f.Rules(); !slices.Equal(got, []Rule{broad, narrow}) {
		t.Fatalf("failed Delete changed the rules: %v", got)
	}
	if err := f.Delete(ctx, narrow); err != nil {
		t.Fatalf("FailNext must fail only once: %v", err)
	}
	if err := f.Delete(ctx, narrow); !errors.Is(err, ErrUnknownRule) {
		t.Fatalf("Delete of unknown rule: %v", err)
	}
	if err := f.Add(ctx, Rule{}); !errors.Is(err, ErrInvalidRule) {
		t.Fatalf("Add of invalid rule: %v", err)
	}
	calls := f.Calls()
	if len(calls) != 9 || calls[0].Err == nil || calls[1].Op != "add" || calls[4].Op != "delete" || !errors.Is(calls[5].Err, boom) {
		t.Fatalf("Calls() = %+v", calls)
	}
	if err := f.Close(ctx); err != nil || len(f.Rules()) != 0 {
		t.Fatalf("Close: %v, rules %v", err, f.Rules())
	}
	if err := f.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestFakeConcurrent(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				r := fakeRule(uint16(1 + i*100 + j))
				if err := f.Add(ctx, r); err != nil {
					t.Error(err)
					return
				}
				if j%2 == 0 {
					if err := f.Delete(ctx, r); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := len(f.Rules()); n != 8*25 {
		t.Fatalf("%d live rules, want %d", n, 8*25)
	}
}
