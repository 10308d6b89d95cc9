//go:build linux

package conformance

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Vector is one entry of spec/vectors/classic.json.
type Vector struct {
	Name        string `json:"name"`
	Requirement string `json:"requirement"`
	Secret      string `json:"secret"`
	Port        int    `json:"port"`
	Group       string `json:"group"`
	Tag         uint32 `json:"tag"`
	Payload     string `json:"payload"`
	PayloadHex  string `json:"payload_hex"`
	SameAs      string `json:"same_as"`
	Field       string `json:"field"`
}

// Bytes returns the vector's exact payload bytes.
func (v Vector) Bytes() []byte {
	if v.PayloadHex != "" {
		if b, err := hex.DecodeString(v.PayloadHex); err == nil {
			return b
		}
	}
	return []byte(v.Payload)
}

// Vectors is spec/vectors/classic.json.
type Vectors struct {
	Valid   []Vector `json:"valid"`
	Lenient []Vector `json:"lenient"`
	Reject  []Vector `json:"reject"`
}

// LoadVectors reads a classic.json file.
func LoadVectors(path string) (*Vectors, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v Vectors
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &v, nil
}

// FindSpecDir looks for spec/doorman.md in dir and its parents.
func FindSpecDir(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(d, "spec")
		if _, err := os.Stat(filepath.Join(p, "doorman.md")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("spec/doorman.md not found in " + dir + " or its parents")
		}
		d = parent
	}
}
