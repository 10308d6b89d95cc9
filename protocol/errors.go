package protocol

import "errors"

// Field names a field of a classic knock, for error reports.
type Field string

// The fields of a classic knock (CLASSIC-2.1).
const (
	FieldLength Field = "length"
	FieldPort   Field = "port"
	FieldGroup  Field = "group"
	FieldTag    Field = "tag"
	FieldMAC    Field = "hmac"
)

// FieldError reports a knock that is not well formed: which field is wrong
// and why. The parser returns only the package's sentinel *FieldError values
// (ErrLength, ErrPortSyntax, ...), so returning one never allocates and
// callers may compare with errors.Is or switch on the Field.
type FieldError struct {
	Field  Field
	Reason string
}

func (e *FieldError) Error() string {
	return "knock: bad " + string(e.Field) + ": " + e.Reason
}

// Parse errors (CLASSIC-2.x). Each names the field at fault.
var (
	ErrLength       = &FieldError{FieldLength, "payload is not 47 to 82 bytes (83 with a final newline)"}
	ErrNotClassic   = &FieldError{FieldLength, "first byte is not a digit 1-9: not a classic knock"}
	ErrFieldCount   = &FieldError{FieldLength, "not exactly four fields separated by single spaces"}
	ErrPortSyntax   = &FieldError{FieldPort, "not 1 to 5 decimal digits without a leading zero"}
	ErrPortRange    = &FieldError{FieldPort, "outside 1-65535"}
	ErrGroupLength  = &FieldError{FieldGroup, "not 1 to 32 characters"}
	ErrGroupSyntax  = &FieldError{FieldGroup, "character outside the guest-name alphabet"}
	ErrTagSyntax    = &FieldError{FieldTag, "not exactly 10 decimal digits"}
	ErrTagRange     = &FieldError{FieldTag, "above 4294967295"}
	ErrMACSyntax    = &FieldError{FieldMAC, "not exactly 32 hexadecimal digits"}
	errGroupBuildUp = errors.New("knock: group name must be 1 to 32 characters of the guest-name alphabet")
)

// Verification errors (CLASSIC-4.x), in the order the checks run.
var (
	// ErrUnknownGuest: no guest record has the knock's group name.
	ErrUnknownGuest = errors.New("unknown guest")
	// ErrPortNotAllowed: the guest may not open the requested port.
	ErrPortNotAllowed = errors.New("guest not registered for port")
	// ErrAddrNotAllowed: the knock's source address is not one of the guest's.
	ErrAddrNotAllowed = errors.New("guest not registered for address")
	// ErrBadMAC: the HMAC does not match the guest's secret.
	ErrBadMAC = errors.New("incorrect secret")
	// ErrReplay: the knock's MAC was accepted before.
	ErrReplay = errors.New("probable replay attempt")
	// ErrReplayFull: the replay store is at capacity, so no new knock can be
	// remembered and none is admitted (fail closed, CLASSIC-5.4).
	ErrReplayFull = errors.New("replay store full")
)
