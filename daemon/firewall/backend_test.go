package firewall

import "context"

// backend is what the daemon consumes; every backend must satisfy it.
type backend interface {
	Start(context.Context, Notify) error
	Apply(context.Context, []Door) []error
	Close(context.Context) error
}
