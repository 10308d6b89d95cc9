//go:build linux

package adapter

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseEvents(t *testing.T) {
	in := `{"time":"2026-01-01T00:00:00Z","event":"ready","pid":7}
time=... level=INFO msg=not an event
{"event":"reload","ok":false,"error":"bad"}
{"no":"event"}
{broken
{"event":"door","state":"open"}
{"event":"stopp`
	evs := ParseEvents([]byte(in))
	var names []string
	for _, e := range evs {
		names = append(names, e.Name)
	}
	if strings.Join(names, " ") != "ready reload door" {
		t.Fatalf("events %v", names)
	}
	if evs[1].Fields["ok"] != false || evs[0].Fields["pid"] != float64(7) {
		t.Errorf("fields %v %v", evs[0].Fields, evs[1].Fields)
	}
	if FindEvent(evs, "reload", 0) != 1 || FindEvent(evs, "reload", 2) != -1 || FindEvent(evs, "stopped", 0) != -1 {
		t.Error("findEvent")
	}
}

// TestReadEvents: events from a file count from where the run started;
// from stdout ("-") they are picked out of the log lines.
func TestReadEvents(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(path, []byte("{\"event\":\"ready\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &Adapter{Events: "{{.WorkDir}}/events.jsonl"}
	ep, err := a.EventsPath(Model{WorkDir: dir})
	if err != nil || ep != path {
		t.Fatalf("EventsPath = %q, %v; want %s", ep, err, path)
	}
	p := &Proc{a: a, stdout: &lockedBuffer{}, eventsPath: ep, eventsFrom: int64(len("{\"event\":\"ready\"}\n"))}
	if evs, err := p.Events(); err != nil || len(evs) != 0 {
		t.Fatalf("an earlier run's event counted: %v %v", evs, err)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("{\"event\":\"ready\",\"pid\":2}\n")
	f.Close()
	if evs, err := p.Events(); err != nil || len(evs) != 1 || evs[0].Fields["pid"] != float64(2) {
		t.Fatalf("events %v %v", evs, err)
	}
	p.eventsPath = "-"
	p.stdout.Write([]byte("starting\n{\"event\":\"reload\",\"ok\":true}\n"))
	if evs, err := p.Events(); err != nil || len(evs) != 1 || evs[0].Name != "reload" {
		t.Fatalf("stdout events %v %v", evs, err)
	}
}

func TestAdapterValidation(t *testing.T) {
	base := "name = \"x\"\nkind = \"daemon\"\nstart = [\"d\"]\n"
	for _, c := range []struct{ toml, err string }{
		{base + "events = \"{{.EventsFile}}\"\nready_log = \"up\"\n", "events replaces ready_log"},
		{base + "ready_event = \"ready\"\n", "need events"},
		{base + "doormand_events = true\n", "need events"},
		{base + "stop_signal = \"SIGFOO\"\n", "stop_signal"},
		{base + "reload_log = \"(\"\n", "reload_log"},
		{base + "[[file]]\nname = \"a\"\nmode = \"0999\"\ntemplate = \"\"\n", "mode"},
		{base + "bogus = 1\n", "unknown keys"},
		{"kind = \"client\"\nknock = [\"k\"]\nstart = [\"d\"]\n", "daemon key"},
	} {
		_, err := ParseAdapter("t", []byte(c.toml))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: %v, want an error with %q", c.toml, err, c.err)
		}
	}
	a, err := ParseAdapter("t", []byte(base+"events = \"-\"\n"))
	if err != nil || a.ReadyEvent != "ready" || a.ReloadEvent != "reload" {
		t.Errorf("defaults: %+v %v", a, err)
	}
}

func TestLookPathIsAbsolute(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prog"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Dir(dir))
	a := &Adapter{Name: "x", SearchPath: []string{filepath.Base(dir)}}
	p, err := a.LookPath("prog")
	if err != nil || p != filepath.Join(dir, "prog") {
		t.Errorf("LookPath = %q, %v; want %s", p, err, filepath.Join(dir, "prog"))
	}
	p, err = a.LookPath(filepath.Join(filepath.Base(dir), "prog"))
	if err != nil || !filepath.IsAbs(p) {
		t.Errorf("LookPath of a relative path = %q, %v", p, err)
	}
}

func TestCheckProgram(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "x")
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckProgram([]string{exe}); err != nil {
		t.Error(err)
	}
	for _, argv := range [][]string{{"bin/knock"}, {filepath.Join(dir, "missing")}, {dir}, {"no-such-program-here"}, {}} {
		err := CheckProgram(argv)
		if !errors.Is(err, ErrSetup) {
			t.Errorf("%q: %v, want a setup error", argv, err)
		}
	}
}
