//go:build !linux

package capture

import (
	"context"
	"fmt"
	"runtime"
)

// Conn receives candidate packets. Capture is only implemented on Linux.
type Conn struct{}

// Open fails: capture is only implemented on Linux.
func Open(ctx context.Context, cfg Config) (*Conn, error) {
	return nil, fmt.Errorf("capture: open on interface %q: not supported on %s", cfg.Interface, runtime.GOOS)
}

// Read fails: capture is only implemented on Linux.
func (c *Conn) Read(p *Packet) error {
	return fmt.Errorf("capture: read: not supported on %s", runtime.GOOS)
}

// Buffered reports false: capture is only implemented on Linux.
func (c *Conn) Buffered() bool { return false }

// Close does nothing: capture is only implemented on Linux.
func (c *Conn) Close() error { return nil }

// LinkType names the capture device's link type.
func (c *Conn) LinkType() string { return "" }

// LinkHeaderLen is the link-header length skipped.
func (c *Conn) LinkHeaderLen() int { return 0 }
