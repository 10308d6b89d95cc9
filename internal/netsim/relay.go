//go:build linux

package netsim

import (
	"container/heap"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultQueueLen bounds each direction of a relay when LinkOptions.QueueLen is 0.
const DefaultQueueLen = 1024

// ReorderHold is how long a reordered frame is held back on a relayed link
// without Delay, so that frames sent after it overtake it.
const ReorderHold = 10 * time.Millisecond

// maxFrame is the largest frame a relay reads; tun/tap MTUs stay far below.
const maxFrame = 65536

// Relay directions.
const (
	dirAB = 0 // read from A, write to B
	dirBA = 1
)

// RelayStats counts what a relay did, summed over both directions.
type RelayStats struct {
	Forwarded  uint64 // frames written out, duplicates included
	Lost       uint64 // dropped by the Loss setting
	Duplicated uint64 // extra copies made
	Reordered  uint64 // frames sent out of order on purpose
	Overflow   uint64 // dropped because the queue was full
}

// relay copies frames between two tun/tap queues, applying impairments.
type relay struct {
	ends [2]*os.File
	log  *slog.Logger
	opts LinkOptions // fixed after creation except loss
	loss [2]atomic.Int32
	q    [2]*schedQueue
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	forwarded, lost, duplicated, reordered, overflow atomic.Uint64
}

func newRelay(a, b *os.File, o LinkOptions, log *slog.Logger) *relay {
	o.Loss, o.Duplicate, o.Reorder = clampPct(o.Loss), clampPct(o.Duplicate), clampPct(o.Reorder)
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	r := &relay{ends: [2]*os.File{a, b}, log: log, opts: o, done: make(chan struct{})}
	for d := range 2 {
		r.loss[d].Store(int32(o.Loss))
		r.q[d] = &schedQueue{max: o.QueueLen, wake: make(chan struct{}, 1)}
	}
	return r
}

// start launches a reader and a writer per direction.
func (r *relay) start() {
	for d := range 2 {
		r.wg.Add(2)
		go r.routineRead(d)
		go r.routineWrite(d)
	}
}

// close stops the goroutines and closes both queues, which deletes the
// devices. It is idempotent.
func (r *relay) close() {
	r.once.Do(func() {
		close(r.done)
		for _, f := range r.ends {
			f.Close()
		}
		r.wg.Wait()
	})
}

func (r *relay) setLoss(dir, pct int) { r.loss[dir].Store(int32(clampPct(pct))) }

func (r *relay) stats() RelayStats {
	return RelayStats{
		Forwarded: r.forwarded.Load(), Lost: r.lost.Load(), Duplicated: r.duplicated.Load(),
		Reordered: r.reordered.Load(), Overflow: r.overflow.Load(),
	}
}

func hit(pct int) bool { return pct > 0 && (pct >= 100 || rand.IntN(100) < pct) }

// routineRead reads frames from end d and schedules them for the other end.
func (r *relay) routineRead(d int) {
	defer r.wg.Done()
	src, q := r.ends[d], r.q[d]
	buf := make([]byte, maxFrame)
	for {
		n, err := src.Read(buf)
		if err != nil {
			select {
			case <-r.done:
			default:
				r.log.Warn("relay read stopped", "dir", d, "err", err)
			}
			return
		}
		if hit(int(r.loss[d].Load())) {
			r.lost.Add(1)
			continue
		}
		now := time.Now()
		due := now.Add(r.opts.Delay)
		if j := r.opts.Jitter; j > 0 {
			due = due.Add(time.Duration(rand.Int64N(int64(2*j)+1)) - j)
		}
		if hit(r.opts.Reorder) {
			r.reordered.Add(1)
			if r.opts.Delay > 0 {
				due = now
			} else {
				due = now.Add(ReorderHold)
			}
		}
		frame := append([]byte(nil), buf[:n]...)
		copies := 1
		if hit(r.opts.Duplicate) {
			copies = 2
			r.duplicated.Add(1)
		}
		for range copies {
			if !q.push(due, frame) {
				r.overflow.Add(1)
			}
		}
	}
}

// routineWrite writes frames of direction d to the other end when due.
func (r *relay) routineWrite(d int) {
	defer r.wg.Done()
	dst, q := r.ends[1-d], r.q[d]
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		frame, wait, ok := q.popDue(time.Now())
		if ok {
			// A write error (device going down) loses the frame like a wire would.
			if _, err := dst.Write(frame); err == nil {
				r.forwarded.Add(1)
			}
			continue
		}
		if wait > 0 {
			timer.Reset(wait)
		}
		var tc <-chan time.Time
		if wait > 0 {
			tc = timer.C
		}
		select {
		case <-r.done:
			return
		case <-q.wake:
		case <-tc:
		}
	}
}

func clampPct(p int) int { return min(max(p, 0), 100) }

// schedQueue is a bounded queue of frames ordered by due time, then arrival.
type schedQueue struct {
	mu    sync.Mutex
	items frameHeap
	seq   uint64
	max   int
	wake  chan struct{}
}

type queued struct {
	due   time.Time
	seq   uint64
	frame []byte
}

// push adds a frame; it reports false, dropping it, when the queue is full.
func (q *schedQueue) push(due time.Time, frame []byte) bool {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.seq++
	heap.Push(&q.items, queued{due: due, seq: q.seq, frame: frame})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// popDue returns the first frame if it is due at now; otherwise how long
// until it is (0 if the queue is empty).
func (q *schedQueue) popDue(now time.Time) ([]byte, time.Duration, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil, 0, false
	}
	if d := q.items[0].due.Sub(now); d > 0 {
		return nil, d, false
	}
	it := heap.Pop(&q.items).(queued)
	return it.frame, 0, true
}

type frameHeap []queued

func (h frameHeap) Len() int { return len(h) }
func (h frameHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h frameHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)   { *h = append(*h, x.(queued)) }
func (h *frameHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = queued{}
	*h = old[:len(old)-1]
	return it
}

// Stats returns the relay counters of a relayed link, or the zero value for
// a veth link.
func (l *Link) Stats() RelayStats {
	if l.relay == nil {
		return RelayStats{}
	}
	return l.relay.stats()
}
