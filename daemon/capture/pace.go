package capture

import "time"

// Wakeup pacing of the ring reader. Going to sleep in poll(2) and being
// woken up costs the reader tens of microseconds of CPU (20-30 µs measured
// in the nested virtual machine this was tuned on), as much as a hundred
// frames; the kernel wakes a sleeping reader for every packet. So a reader
// that slept whenever the ring ran empty would, under a flood, sleep and
// wake for every few packets and spend most of its time doing so. The
// pacer lets it sleep wakeBurst times in a row at once, and after that at
// most once per wakeInterval: an idle knock is read the moment it
// arrives, and under a flood the reader sleeps at most about 1000 times a
// second whatever the rate (a few percent of a core), reading everything
// that came meanwhile in one go, without a system call per frame. A knock
// during a flood waits at most wakeInterval longer, which the knock
// latency target (5 ms at the 99th percentile under a 200000/s flood)
// leaves room for.
const (
	wakeInterval = time.Millisecond
	wakeBurst    = 4
)

// wakePacer spaces out the reader's sleeps: a generic cell rate algorithm
// that allows wakeBurst sleeps at once and one per wakeInterval on
// average. Its zero value is ready to use.
type wakePacer struct {
	tat time.Time // when the budget is whole again, give or take a burst
}

// next accounts for one sleep the reader is about to take at now, and
// returns how long it must pause first (zero: none).
func (p *wakePacer) next(now time.Time) time.Duration {
	if p.tat.Before(now) {
		p.tat = now
	}
	pause := p.tat.Sub(now) - (wakeBurst-1)*wakeInterval
	p.tat = p.tat.Add(wakeInterval)
	return max(pause, 0)
}
