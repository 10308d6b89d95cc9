package protocol

import (
	"fmt"
	"math"
	"net/netip"
	"time"
)

// DefaultModernWindow is how far a modern knock's timestamp may be from the
// doorman's clock, either way, unless configured otherwise (MODERN-12.14).
const DefaultModernWindow = 60 * time.Second

// CheckTime reports how far the knock timestamp ts (Unix nanoseconds) is
// from now: the skew is positive when the knocker's clock is ahead. It
// returns ErrClockSkew when the skew is larger than window either way; the
// window is inclusive (MODERN-12.14). A window of 0 or less means
// DefaultModernWindow. Skews beyond what a Duration holds are clamped.
func CheckTime(ts uint64, now time.Time, window time.Duration) (time.Duration, error) {
	if window <= 0 {
		window = DefaultModernWindow
	}
	skew := skewOf(ts, now.UnixNano())
	if skew > window || skew < -window {
		return skew, ErrClockSkew
	}
	return skew, nil
}

// skewOf returns ts - now in nanoseconds, saturating at the Duration range.
func skewOf(ts uint64, now int64) time.Duration {
	if ts > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	d := int64(ts) - now
	// Both are non-negative unless now is before 1970; overflow only when
	// now is negative and ts large.
	if now < 0 && d < 0 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

// DescribeSkew says how far off the knocker's clock is, for the doorman's
// log (MODERN-12.14): "client clock 93 s ahead", "client clock 5 s behind",
// or with larger units past 1000 seconds ("client clock 26h0m0s behind").
func DescribeSkew(skew time.Duration) string {
	dir := "ahead"
	if skew < 0 {
		dir = "behind"
		if skew == math.MinInt64 {
			skew++
		}
		skew = -skew
	}
	if s := skew.Round(time.Second); s < 1000*time.Second {
		if s == 0 && skew > 0 {
			return fmt.Sprintf("client clock %d ms %s", skew.Milliseconds(), dir)
		}
		return fmt.Sprintf("client clock %d s %s", int64(s/time.Second), dir)
	}
	return "client clock " + skew.Truncate(time.Second).String() + " " + dir
}

// Door returns the source address the door is for (MODERN-12.15,
// MODERN-12.18): the stated source, which the packet must come from
// (ErrSourceMismatch otherwise), or for an "as seen" knock the packet's
// source src. An IPv4-mapped IPv6 src counts as the IPv4 address it
// carries.
func (r *Request) Door(src netip.Addr) (netip.Addr, error) {
	src = src.Unmap().WithZone("")
	if r.AsSeen() {
		return src, nil
	}
	if r.Source != src {
		return netip.Addr{}, ErrSourceMismatch
	}
	return src, nil
}

// VerifyModern runs the checks that follow the guest lookup of an opened
// knock, in the order of MODERN-12.11: the time window (MODERN-12.14), the
// source binding (MODERN-12.15), then the guest's ports and addresses
// (MODERN-12.16). src is the packet's source address, now the doorman's
// clock, window the configured time window (0 means the default). It
// returns the skew, for the log line of a refusal for time.
//
// The last check, that the timestamp is later than the last one accepted
// from this guest, records state and is the caller's (MODERN-12.17); so are
// the guest lookup by k.Client and the rate limit before Open.
func VerifyModern(k *ModernKnock, g *Guest, src netip.Addr, now time.Time, window time.Duration) (time.Duration, error) {
	if g.Key != k.Client {
		return 0, ErrUnknownGuest
	}
	skew, err := CheckTime(k.Time, now, window)
	if err != nil {
		return skew, err
	}
	if _, err := k.Door(src); err != nil {
		return skew, err
	}
	if !g.AllowsPort(k.Port) {
		return skew, ErrPortNotAllowed
	}
	if !g.AllowsAddr(src) {
		return skew, ErrAddrNotAllowed
	}
	return skew, nil
}
