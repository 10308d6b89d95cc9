package config

import (
	"strconv"
	"strings"
)

// Warning is a problem in a configuration file that does not stop the file
// from being used: an unknown keyword, a keyword given twice, a setting that
// Doorman 0.81 would treat differently. The daemon logs warnings at startup.
type Warning struct {
	File string // file name as given to the parser
	Line int    // 1-based line number; 0 means the file as a whole
	Key  string // keyword or field kind ("port", "address"); may be empty
	Text string // offending text as written; may be empty
	Msg  string // what is wrong or what happens instead
}

// String formats the warning like an error: "file:line: key "text": msg".
func (w Warning) String() string { return format(w.File, w.Line, w.Key, w.Text, w.Msg) }

// Error is one validation error in a configuration file. The parsers collect
// every Error in a file and return them together with errors.Join, so an
// administrator sees them all at once; use errors.As to get the first one.
type Error struct {
	File string // file name as given to the parser
	Line int    // 1-based line number; 0 means the file as a whole
	Key  string // keyword or field kind ("port", "address"); may be empty
	Text string // offending text as written; may be empty (never a secret)
	Msg  string // the rule that is broken
	Err  error  // underlying cause, such as a failed host lookup; may be nil
}

// Error formats the error as "file:line: key "text": msg".
func (e *Error) Error() string { return format(e.File, e.Line, e.Key, e.Text, e.Msg) }

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

func format(file string, line int, key, text, msg string) string {
	var b strings.Builder
	b.WriteString(file)
	if line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(line))
	}
	b.WriteString(": ")
	if key != "" {
		b.WriteString(key)
		if text != "" {
			b.WriteByte(' ')
		}
	}
	if text != "" {
		b.WriteString(strconv.Quote(text))
	}
	if key != "" || text != "" {
		b.WriteString(": ")
	}
	b.WriteString(msg)
	return b.String()
}

// issues collects the errors and warnings of one file.
type issues struct {
	file     string
	errs     []error
	warnings []Warning
}

func (is *issues) errorf(line int, key, text, msg string, cause error) {
	is.errs = append(is.errs, &Error{File: is.file, Line: line, Key: key, Text: text, Msg: msg, Err: cause})
}

func (is *issues) warn(line int, key, text, msg string) {
	is.warnings = append(is.warnings, Warning{File: is.file, Line: line, Key: key, Text: text, Msg: msg})
}
