//go:build !linux

package firewall

// nsPin does nothing where there are no network namespaces.
type nsPin struct{}

func pinNS() (nsPin, error)            { return nsPin{}, nil }
func (nsPin) do(fn func() error) error { return fn() }
func (nsPin) close()                   {}
