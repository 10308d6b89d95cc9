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

var idRE = regexp.MustCompile(`\*\*(CLASSIC-(\d+)\.\d+(?:/\d+)?)\*\*`)

// TestEveryPacketAndFormatRequirementIsTested: every requirement of the
// packet (sections 2, 3), the file formats (8, 9, 10) and the client (11)
// is cited by at least one test in the repository (by its exact ID). The
// daemon's sections (4-7) are checked the same way but only reported, since
// some are covered by the conformance suite's cases instead.
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
	for _, m := range ids {
		id, section := m[1], m[2]
		// A requirement with numbered parts is covered through them.
		if cited(id) || (!strings.Contains(id, "/") && strings.Contains(text, id+"/")) {
			continue
		}
		switch section {
		case "2", "3", "8", "9", "10", "11":
			t.Errorf("%s is cited by no test", id)
		default:
			t.Logf("%s (daemon section) is cited by no test", id)
		}
	}
}
