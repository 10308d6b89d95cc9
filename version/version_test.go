package version

import (
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// semver is the grammar of semantic versions (semver.org, 2.0.0).
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(-(0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*)?` +
	`(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

func TestReleaseIsSemver(t *testing.T) {
	r := Release()
	if !semver.MatchString(r) || strings.ContainsAny(r, "-+") {
		t.Fatalf("VERSION holds %q; want a release number such as 1.0.0", r)
	}
}

func TestResolve(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, c := range []struct {
		name, stamp, main string
		settings          []debug.BuildSetting
		want              string
	}{
		{"make release", "1.0.0", "(devel)", nil, "1.0.0"},
		{"make dev build", "1.0.0-dev+01534cf.dirty", "(devel)", nil, "1.0.0-dev+01534cf.dirty"},
		{"stamp beats module version", "1.0.0", "v0.9.0", nil, "1.0.0"},
		{"go install at a tag", "", "v1.2.3", nil, "1.2.3"},
		{"go install at a pre-release tag", "", "v1.2.3-rc.1", nil, "1.2.3-rc.1"},
		{"go build without vcs", "", "(devel)", nil, "1.0.0-dev"},
		{"go build, no tag: pseudo-version", "", "v0.0.0-20261130044100-01534cf3a1b2+dirty",
			vcs("01534cf3a1b2c3d4e5f60718293a4b5c6d7e8f90", "true"), "1.0.0-dev+01534cf.dirty"},
		{"go build after a tag: pseudo-version", "", "v1.0.1-0.20261130044100-01534cf3a1b2",
			vcs("01534cf3a1b2c3d4e5f60718293a4b5c6d7e8f90", "false"), "1.0.0-dev+01534cf"},
		{"empty module version", "", "", nil, "1.0.0-dev"},
	} {
		got := resolve(c.stamp, c.main, "1.0.0", c.settings)
		if got != c.want {
			t.Errorf("%s: resolve(%q, %q) = %q, want %q", c.name, c.stamp, c.main, got, c.want)
		}
		if !semver.MatchString(got) {
			t.Errorf("%s: %q is not a semantic version", c.name, got)
		}
	}
}

func TestLine(t *testing.T) {
	v := Version()
	for _, c := range []struct {
		program   string
		protocols []Protocol
		want      string
	}{
		{"doormand", []Protocol{Classic}, "doormand " + v + " (protocols: classic 1.0/Doorman 0.81)"},
		{"knock (doorman)", []Protocol{Classic, Modern}, "knock (doorman) " + v + " (protocols: classic 1.0/Doorman 0.81, modern 2)"},
		{"tool", nil, "tool " + v},
	} {
		if got := Line(c.program, c.protocols...); got != c.want {
			t.Errorf("Line(%q, %q) = %q, want %q", c.program, c.protocols, got, c.want)
		}
	}
}

// TestProtocolsMatchSpec keeps the versions --version names equal to the
// ones spec/doorman.md gives the two protocols.
func TestProtocolsMatchSpec(t *testing.T) {
	b, err := os.ReadFile("../spec/doorman.md")
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.Join(strings.Fields(string(b)), " ")
	classic := regexp.MustCompile(`^classic (\d+\.\d+)/Doorman 0\.81$`).FindStringSubmatch(string(Classic))
	if classic == nil {
		t.Fatalf("Classic = %q: want classic N.N/Doorman 0.81", Classic)
	}
	if want := "classic protocol (wire-compatible with Doorman 0.81), version " + classic[1]; !strings.Contains(spec, want) {
		t.Errorf("spec/doorman.md does not say %q: Classic = %q is out of date", want, Classic)
	}
	modern := regexp.MustCompile(`^modern (\d+)$`).FindStringSubmatch(string(Modern))
	if modern == nil {
		t.Fatalf("Modern = %q: want modern N", Modern)
	}
	if want := "modern protocol (protocol version " + modern[1] + ")"; !strings.Contains(spec, want) {
		t.Errorf("spec/doorman.md does not say %q: Modern = %q is out of date", want, Modern)
	}
}
