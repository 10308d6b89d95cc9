//go:build linux

package conformance

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestShippedAdaptersParse(t *testing.T) {
	files, err := filepath.Glob("adapters/*.toml")
	if err != nil || len(files) < 5 {
		t.Fatalf("adapters: %v %v", files, err)
	}
	for _, f := range files {
		a, err := LoadAdapter(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		m := (&Topology{Server: Host{}, Client: Host{}, Client2: Host{}}).model(t.TempDir())
		var data any = m
		if a.Kind == KindClient {
			data = KnockData{Host: "198.18.0.1", Port: "22", Group: "g", Secret: "s", KnockPort: 1001, WorkDir: t.TempDir()}
		}
		a.SearchPath = []string{"/nonexistent"}
		if err := a.WriteFiles(t.TempDir(), data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		for id := range a.Unsupported {
			if !caseExists(id) {
				t.Errorf("%s: unsupported names unknown case %q", f, id)
			}
		}
		if a.Kind == KindDaemon && a.Name != "exampled" && !strings.HasSuffix(a.Name, "0.81") {
			// Every daemon adapter of doormand renders the modern guests.
			b, _ := os.ReadFile(f)
			if !strings.Contains(string(b), "{{range .ModernGuests}}") || !strings.Contains(string(b), "{{.PrivateKeyFile}}") {
				t.Errorf("%s: renders no modern guests or private key", f)
			}
		}
	}
}

// caseExists reports whether id names a case, or with a final "*" a
// prefix of one.
func caseExists(id string) bool {
	p, glob := strings.CutSuffix(id, "*")
	for _, c := range Cases() {
		if c.ID == id || glob && strings.HasPrefix(c.ID, p) {
			return true
		}
	}
	return false
}

func TestUnsupportedGlob(t *testing.T) {
	a := &Adapter{Unsupported: map[string]string{"12.*": "modern", "12.8/reject-vectors": "own", "1*": "short"}}
	for id, want := range map[string]string{"12.13/unknown-key": "modern", "12.8/reject-vectors": "own", "11.2/x": "short", "4.1/bad-mac": ""} {
		got, ok := a.UnsupportedReason(id)
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", id, got, ok, want)
		}
	}
}

func TestCaseIDsUniqueAndCited(t *testing.T) {
	spec, err := os.ReadFile("../spec/doorman.md")
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	ids := map[string]bool{}
	levels := map[string][]string{}
	for _, r := range ParseRequirements(string(spec)) {
		ids[r.ID] = true
		levels[r.ID] = r.Levels
	}
	seen := map[string]bool{}
	for _, c := range Cases() {
		if seen[c.ID] {
			t.Errorf("duplicate case ID %s", c.ID)
		}
		seen[c.ID] = true
		for _, r := range append([]string{c.Requirement}, c.Also...) {
			if !ids[r] {
				t.Errorf("case %s cites %s, which the spec does not define", c.ID, r)
			}
		}
		if c.Target != TargetDaemon && c.Target != TargetClient {
			t.Errorf("case %s: target %q", c.ID, c.Target)
		}
		if !slices.Contains(levels[c.Requirement], c.Level) {
			t.Errorf("case %s: level %s, but %s says %v", c.ID, c.Level, c.Requirement, levels[c.Requirement])
		}
		if c.Description == "" || c.Run == nil {
			t.Errorf("case %s: no description or no run function", c.ID)
		}
		sec, _, _ := strings.Cut(c.ID, "/")
		_, num, _ := strings.Cut(c.Requirement, "-")
		if base, _, _ := strings.Cut(num, "/"); base != sec {
			t.Errorf("case %s is filed under section %s but checks %s", c.ID, sec, c.Requirement)
		}
	}
}

func TestVectorsLoad(t *testing.T) {
	v, err := LoadVectors("../spec/vectors/classic.json")
	if err != nil {
		t.Skipf("vectors: %v", err)
	}
	if len(v.Valid) == 0 || len(v.Reject) == 0 || len(v.Lenient) == 0 {
		t.Fatalf("empty vectors: %d %d %d", len(v.Valid), len(v.Reject), len(v.Lenient))
	}
	// The suite's own HMAC must agree with the published vectors.
	for _, x := range v.Valid {
		if got := classicPayload(x.Port, x.Group, x.Tag, x.Secret); got != x.Payload {
			t.Errorf("%s: built %q, vector %q", x.Name, got, x.Payload)
		}
	}
}

func TestRawIPv4(t *testing.T) {
	r := rawIPv4{Options: []byte{1, 1, 1, 0}, MF: true, SrcPort: 1, DstPort: 1001, Payload: []byte("x")}
	r.Src, r.Dst = mustAddr("198.18.0.2"), mustAddr("198.18.0.1")
	b := r.bytes()
	if b[0] != 0x46 || len(b) != 24+9 || b[6]&0x20 == 0 {
		t.Fatalf("header % x", b[:24])
	}
	if inetChecksum(b[:24], 0) != 0 {
		t.Errorf("IP header checksum does not verify")
	}
}

func TestReports(t *testing.T) {
	rs := []Result{{ID: "4.3/ip-options", Req: "CLASSIC-4.3", Level: "MUST", Verdict: Fail, Detail: "expected a, observed b", Impl: "x", Duration: time.Second},
		{ID: "6.3/waitfor-expiry", Req: "CLASSIC-6.3", Level: "MUST", Verdict: Pass, Impl: "x"},
		{ID: "6.2/single-connection", Req: "CLASSIC-6.2/1", Level: "MUST", Verdict: Unsupported, Detail: "gap", Impl: "x"}}
	var b bytes.Buffer
	WriteTable(&b, rs)
	if !strings.Contains(b.String(), "4. Receiving") || !strings.Contains(b.String(), "1 pass, 1 fail, 0 skipped, 1 unsupported") {
		t.Errorf("table:\n%s", b.String())
	}
	b.Reset()
	if err := WriteJSON(&b, rs); err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back) != 3 || back[0]["verdict"] != "fail" {
		t.Errorf("json: %v %s", err, b.String())
	}
	b.Reset()
	if err := WriteJUnit(&b, rs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `failures="1"`) || !strings.Contains(b.String(), `skipped="1"`) {
		t.Errorf("junit:\n%s", b.String())
	}
}

func FuzzParseAdapter(f *testing.F) {
	for _, p := range []string{"adapters/knock.toml", "adapters/doormand-nftables.toml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("kind = \"client\"\nknock = [\"x\"]\n[[file]]\nname = \"../x\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAdapter("fuzz", b)
		if err != nil {
			return
		}
		for _, fl := range a.Files {
			if filepath.IsAbs(fl.Name) || strings.Contains(fl.Name, "..") {
				t.Fatalf("accepted file name %q", fl.Name)
			}
		}
	})
}
