// Package spec_test checks the specification against the tests that cite it.
package spec_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var idRE = regexp.MustCompile(`\*\*((CLASSIC|MODERN)-(\d+)\.\d+(?:/\d+)?)\*\*`)

// TestEveryPacketAndFormatRequirementIsTested: every requirement of the
// packet (sections 2, 3), the file formats (8, 9, 10) and the client (11)
// is cited by at least one test in the repository (by its exact ID), and so
// is every modern requirement (section 12), the daemon-level ones
// included. The classic daemon's sections (4-7) are checked the same way
// but only reported, since some are covered by the conformance suite's
// cases instead.
func TestEveryPacketAndFormatRequirementIsTested(t *testing.T) {
	spec, err := os.ReadFile("doorman.md")
	if err != nil {
		t.Fatal(err)
	}
	var corpus strings.Builder
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || path == "../spec") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, "_test.go") || strings.HasPrefix(filepath.Base(path), "cases_") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			corpus.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	text := corpus.String()
	cited := func(id string) bool {
		for i := 0; ; {
			j := strings.Index(text[i:], id)
			if j < 0 {
				return false
			}
			end := i + j + len(id)
			// "CLASSIC-2.2" must not count as a citation of "CLASSIC-2.22"
			// or, for a sub-requirement, be mistaken for its parent.
			if end >= len(text) || !strings.ContainsRune("0123456789/", rune(text[end])) {
				return true
			}
			i = end
		}
	}
	ids := idRE.FindAllStringSubmatch(string(spec), -1)
	if len(ids) < 50 {
		t.Fatalf("found only %d requirement IDs in doorman.md", len(ids))
	}
	modern := 0
	for _, m := range ids {
		id, proto, section := m[1], m[2], m[3]
		if proto == "MODERN" {
			modern++
		}
		// A requirement with numbered parts is covered through them.
		if cited(id) || (!strings.Contains(id, "/") && strings.Contains(text, id+"/")) {
			continue
		}
		switch {
		case proto == "MODERN":
			t.Errorf("%s is cited by no test", id)
		case proto == "CLASSIC" && strings.Contains(" 2 3 8 9 10 11 ", " "+section+" "):
			t.Errorf("%s is cited by no test", id)
		default:
			t.Logf("%s (daemon level) is cited by no test", id)
		}
	}
	if modern < 20 {
		t.Fatalf("found only %d modern requirement IDs in doorman.md", modern)
	}
}
