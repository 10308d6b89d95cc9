//go:build linux

package conformance

import (
	"time"

	"github.com/google/gopacket"
)

func gopacketCaptureInfo(t time.Time, n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: t, CaptureLength: n, Length: n}
}
