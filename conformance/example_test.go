//go:build linux

package conformance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestExampleAdapterRendersJSON(t *testing.T) {
	a, err := LoadAdapter("adapters/exampled.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := (&Topology{}).model(dir)
	m.Guests = append(m.Guests, Guest{Name: "carol", Secret: "x", Ports: []int{1}})
	if err := a.WriteFiles(dir, m); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "exampled.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Guests []struct {
			Name, Secret string
			From         []string
		}
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("exampled.json is not JSON: %v\n%s", err, b)
	}
	if cfg.Guests[3].Name != groupSpecials || cfg.Guests[3].Secret != secret255 || cfg.Guests[len(cfg.Guests)-1].From != nil {
		t.Errorf("guests: %+v", cfg.Guests)
	}
}
