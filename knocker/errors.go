package knocker

import "errors"

// Errors a caller may decide on. Functions wrap them with the name or address
// at fault, so test with errors.Is and print the error for the detail.
var (
	// ErrUnknownHost: the host name does not resolve (to an address of the
	// family asked for).
	ErrUnknownHost = errors.New("unknown host")
	// ErrUnknownService: the service is neither a port number 1-65535 nor a
	// known service name.
	ErrUnknownService = errors.New("unknown service")
	// ErrUnreachable: the operating system has no route to the host.
	ErrUnreachable = errors.New("network unreachable")
	// ErrBadGroup: the group name is not 1 to 32 characters of the
	// guest-name alphabet (CLASSIC-2.2/1, CLASSIC-9.3).
	ErrBadGroup = errors.New("bad group name (want 1 to 32 letters, digits or " + groupPunct + ")")
	// ErrNoSecret: no secret was given; a knock cannot be signed without one.
	ErrNoSecret = errors.New("no secret")
	// ErrNotOpened: no TCP connection succeeded before the deadline.
	ErrNotOpened = errors.New("no door opened")
	// ErrConfigPerm: the configuration file or a secret file may be read or
	// written by someone other than its owner.
	ErrConfigPerm = errors.New("holds a secret but is accessible to group or others")
)

// groupPunct is protocol.GroupAlphabet, repeated here because an error
// message must be a constant expression; a test keeps the two in step.
const groupPunct = `!@$%^&*()_-+=|\[]{};:'"<>,?/`
