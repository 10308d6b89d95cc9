package firewall

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestIntegrationNFTablesOpCost reports (never asserts) what one broad-rule
// Add and one Delete cost on this kernel: the firewall's share of the
// knock-to-door latency. Run with -v to see the figures.
func TestIntegrationNFTablesOpCost(t *testing.T) {
	n := newTestNet(t)
	b := NewNFTables(NFTConfig{Table: "dmfwlat"})
	n.must(t, "start", b.Start)
	defer n.do(b.Close)
	const rounds = 200
	var add, del []time.Duration
	err := n.do(func(ctx context.Context) error {
		for i := range rounds {
			r := Rule{Src: n.cli4, Dst: n.srv4, DstPort: uint16(1000 + i%50)}
			t0 := time.Now()
			if err := b.Add(ctx, r); err != nil {
				return err
			}
			t1 := time.Now()
			if err := b.Delete(ctx, r); err != nil {
				return err
			}
			add, del = append(add, t1.Sub(t0)), append(del, time.Since(t1))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(add)
	slices.Sort(del)
	t.Logf("nftables broad Add: p50 %v p99 %v; Delete: p50 %v p99 %v (%d rounds)",
		add[rounds/2], add[rounds*99/100], del[rounds/2], del[rounds*99/100], rounds)

	// Adds while other doors are being deleted: a door closing must not
	// hold up another door opening.
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- n.do(func(ctx context.Context) error {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return nil
				default:
				}
				r := Rule{Src: n.cli4, Dst: n.srv4, DstPort: uint16(5000 + i%50)}
				if err := b.Add(ctx, r); err != nil {
					return err
				}
				if err := b.Delete(ctx, r); err != nil {
					return err
				}
			}
		})
	}()
	var busy []time.Duration
	err = n.do(func(ctx context.Context) error {
		for i := range rounds {
			r := Rule{Src: n.cli4, Dst: n.srv4, DstPort: uint16(3000 + i)}
			t0 := time.Now()
			if err := b.Add(ctx, r); err != nil {
				return err
			}
			busy = append(busy, time.Since(t0))
		}
		return nil
	})
	close(stop)
	if err2 := <-done; err == nil {
		err = err2
	}
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(busy)
	t.Logf("nftables broad Add while other doors close: p50 %v p99 %v", busy[rounds/2], busy[rounds*99/100])
}
