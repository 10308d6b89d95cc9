package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrScriptOutput: a firewall script printed something other than the 0.81
// protocol allows (nothing, garbage, a level outside 0..7).
var ErrScriptOutput = errors.New("unusable firewall script output")

// Syslog severities that bound what a script's reply means.
const (
	// LevelLastFailure is the highest severity (LOG_ERR) that is a failure;
	// 4..7 (warning, notice, info, debug) are logged and taken as success.
	LevelLastFailure = 3
	levelMax         = 7
)

// maxScriptMessage bounds the message kept from a script's reply.
const maxScriptMessage = 512

// ScriptReply is the first line a firewall script printed, parsed.
type ScriptReply struct {
	// Success: the line was exactly "0".
	Success bool
	// Errno, Level and Message come from an "<errno> <level> <message>" line.
	Errno   int
	Level   int // syslog severity 0..7
	Message string
}

// Failed reports whether the reply means the script failed: an
// "<errno> <level> <message>" line with level 0..3.
func (r ScriptReply) Failed() bool { return !r.Success && r.Level <= LevelLastFailure }

// ParseScriptOutput parses a firewall script's stdout by the 0.81 protocol:
// the first non-blank line decides, and is either "0" (success) or
// "<errno> <level> <message>" with errno a decimal integer, level a syslog
// severity 0..7 and message the rest of the line (may be empty). Lines after
// the first are ignored, as the original read only one. Surrounding spaces,
// tabs and a CR are tolerated.
func ParseScriptOutput(out []byte) (ScriptReply, error) {
	var line string
	for len(out) > 0 {
		var l []byte
		l, out, _ = bytes.Cut(out, []byte{'\n'})
		if s := strings.Trim(string(l), " \t\r"); s != "" {
			line = s
			break
		}
	}
	if line == "" {
		return ScriptReply{}, fmt.Errorf("%w: no output", ErrScriptOutput)
	}
	if line == "0" {
		return ScriptReply{Success: true}, nil
	}
	errnoField, rest := nextField(line)
	levelField, msg := nextField(rest)
	errno, err := strconv.ParseInt(errnoField, 10, 32)
	if err != nil {
		return ScriptReply{}, fmt.Errorf("%w: %q: first field is not an errno", ErrScriptOutput, clip(line))
	}
	level, err := strconv.Atoi(levelField)
	if err != nil || level < 0 || level > levelMax {
		return ScriptReply{}, fmt.Errorf("%w: %q: second field is not a syslog level 0..7", ErrScriptOutput, clip(line))
	}
	return ScriptReply{Errno: int(errno), Level: level, Message: clip(msg)}, nil
}

// nextField splits s at its first run of spaces or tabs.
func nextField(s string) (field, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

func clip(s string) string {
	if len(s) > maxScriptMessage {
		return s[:maxScriptMessage] + "..."
	}
	return s
}

// ScriptError is a failure that a firewall script reported itself
// ("<errno> <level> <message>" with level 0..3).
type ScriptError struct {
	Script  string // path of the script
	Rule    Rule
	Errno   int
	Level   int
	Message string
}

// Error implements error. The rule is not repeated: the *RuleError around a
// ScriptError names it.
func (e *ScriptError) Error() string {
	return fmt.Sprintf("script %s reported errno %d (level %d): %s", e.Script, e.Errno, e.Level, e.Message)
}
