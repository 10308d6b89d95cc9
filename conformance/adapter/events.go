//go:build linux

package adapter

import (
	"bytes"
	"encoding/json"
)

// Event is one object of a daemon's event stream (adapter key events):
// one JSON object per line with at least "event"; the schema of doormand's
// stream is in doormand(8). Fields the suite does not know are
// kept in Fields and otherwise ignored.
type Event struct {
	Name   string         // the "event" member
	Fields map[string]any // every member, "event" included
}

// ParseEvents reads JSON lines. Lines that are not a JSON object with a
// string "event" (a log line on a shared standard output, a line torn by
// a crash) are skipped, not errors: the stream is read while the daemon
// writes it.
func ParseEvents(b []byte) []Event {
	var out []Event
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			// An unterminated last line may still be being written.
			break
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var m map[string]any
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		name, ok := m["event"].(string)
		if !ok || name == "" {
			continue
		}
		out = append(out, Event{Name: name, Fields: m})
	}
	return out
}

// FindEvent returns the index of the first event named name at or after
// from, or -1.
func FindEvent(evs []Event, name string, from int) int {
	for i := from; i < len(evs); i++ {
		if evs[i].Name == name {
			return i
		}
	}
	return -1
}
