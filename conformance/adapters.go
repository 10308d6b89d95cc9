//go:build linux

package conformance

import "github.com/doorman-project/doorman/conformance/adapter"

// The adapter types are the adapter package's, which doorman-sim shares;
// these names keep the suite's API as it was.
type (
	// Adapter describes how to run one implementation (adapter.Adapter).
	Adapter = adapter.Adapter
	// FileTemplate is one file an adapter renders (adapter.FileTemplate).
	FileTemplate = adapter.FileTemplate
	// Event is one object of a daemon's event stream (adapter.Event).
	Event = adapter.Event
)

// Adapter kinds.
const (
	KindDaemon = adapter.KindDaemon
	KindClient = adapter.KindClient
)

// LoadAdapter reads an adapter file (adapter.LoadAdapter).
func LoadAdapter(path string) (*Adapter, error) { return adapter.LoadAdapter(path) }

// ParseAdapter parses adapter TOML; name is used in errors (adapter.ParseAdapter).
func ParseAdapter(name string, data []byte) (*Adapter, error) {
	return adapter.ParseAdapter(name, data)
}

// checkProgram is adapter.CheckProgram: a program that cannot be run is a
// setup error.
func checkProgram(argv []string) error { return adapter.CheckProgram(argv) }
