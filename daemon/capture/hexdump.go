package capture

import (
	"encoding/hex"
	"fmt"
	"io"
)

// hexDumpLen is how much of each frame the hex dump shows, as in the
// original's -X.
const hexDumpLen = 128

// dumpInfo is what a hex dump says about one frame besides its bytes.
type dumpInfo struct {
	ifIndex  int
	linkType string
	hdrLen   int
	// hdrHow says where hdrLen came from: "configured", "guessed",
	// "cooked" or "socket".
	hdrHow string
	// vlan is the 802.1Q tag the kernel removed from the frame, or -1.
	vlan int
}

// writeHexDump writes the original's -X output for one frame: the link
// type, the link-header length in use (the configured one when set, not
// the built-in guess the original printed) and the first 128 bytes.
func writeHexDump(w io.Writer, d dumpInfo, frame []byte) {
	fmt.Fprintf(w, "capture: %d bytes on ifindex %d, link type %s, link header length %d (%s)",
		len(frame), d.ifIndex, d.linkType, d.hdrLen, d.hdrHow)
	if d.vlan >= 0 {
		fmt.Fprintf(w, ", 802.1Q vlan %d tag removed by the kernel (not part of the header)", d.vlan)
	}
	fmt.Fprintln(w)
	if len(frame) > hexDumpLen {
		frame = frame[:hexDumpLen]
	}
	io.WriteString(w, hex.Dump(frame))
}
