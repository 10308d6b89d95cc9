//go:build linux && !(amd64 || 386)

package capture

import "sync/atomic"

// storeRelease hands a ring frame back to the kernel: it stores v into
// *p after every load and store before it.
func storeRelease(p *uint32, v uint32) { atomic.StoreUint32(p, v) }
