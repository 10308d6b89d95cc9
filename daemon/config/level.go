package config

import (
	"log/slog"
	"strings"
)

// Syslog severities that log/slog has no name for. Doorman 0.81's loglevel
// keyword takes the eight syslog names; DEBUG, INFO, WARNING and ERROR map to
// slog's own levels and the other four sit between or above them, so that
// ordering is kept: Debug < Info < Notice < Warn < Error < Crit < Alert < Emerg.
const (
	LevelNotice = slog.LevelInfo + 2
	LevelCrit   = slog.LevelError + 4
	LevelAlert  = slog.LevelError + 8
	LevelEmerg  = slog.LevelError + 12
)

// ParseLevel maps a syslog severity name (DEBUG INFO NOTICE WARNING ERROR
// CRIT ALERT EMERG, any case; WARN is accepted for WARNING) to a slog.Level.
func ParseLevel(s string) (slog.Level, bool) {
	switch strings.ToUpper(s) {
	case "DEBUG":
		return slog.LevelDebug, true
	case "INFO":
		return slog.LevelInfo, true
	case "NOTICE":
		return LevelNotice, true
	case "WARNING", "WARN":
		return slog.LevelWarn, true
	case "ERROR":
		return slog.LevelError, true
	case "CRIT":
		return LevelCrit, true
	case "ALERT":
		return LevelAlert, true
	case "EMERG":
		return LevelEmerg, true
	}
	return 0, false
}

// LevelName returns the syslog name of a level, for a slog.HandlerOptions
// ReplaceAttr that should print NOTICE or CRIT instead of INFO+2 or ERROR+4.
// Levels between the named ones take the name of the next lower one.
func LevelName(l slog.Level) string {
	switch {
	case l >= LevelEmerg:
		return "EMERG"
	case l >= LevelAlert:
		return "ALERT"
	case l >= LevelCrit:
		return "CRIT"
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= LevelNotice:
		return "NOTICE"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}
