// Package version tells which release of doorman a program is and which
// knock protocols it speaks, for every program's --version.
//
// The release number lives in the file VERSION beside this package (the
// next or current release, a semantic version). make stamps each build
// with -ldflags "-X github.com/doorman-project/doorman/version.stamp=V":
// V is the release itself for a build of the tag v<release>, else a
// pre-release of it naming the commit, such as 1.0.0-dev+01534cf.dirty.
// Without make, `go install ...@v1.0.0` gives the module's version, and a
// plain `go build` gives <release>-dev.
package version

import (
	_ "embed"
	"regexp"
	"runtime/debug"
	"strings"
)

// Protocol names one knock protocol and the version of it a program
// speaks, as --version prints it.
type Protocol string

// The protocols of spec/doorman.md.
const (
	// Classic is the classic protocol, version 1.0 of the spec,
	// wire-compatible with Doorman 0.81 (spec sections 2 to 11).
	Classic Protocol = "classic 1.0/Doorman 0.81"
	// Modern is the modern protocol, protocol version 2 (spec section 12).
	Modern Protocol = "modern 2"
)

// release is the release number from the file VERSION.
//
//go:embed VERSION
var release string

// stamp is the version make sets at link time; empty otherwise.
var stamp string

// Release returns the release number of the source, from the file
// VERSION, such as "1.0.0".
func Release() string { return strings.TrimSpace(release) }

// Version returns the version of this build: the one make stamped, else
// the module's version when built by `go install module@version`, else
// Release with "-dev" and, when Go recorded it, the commit.
func Version() string {
	var main string
	var settings []debug.BuildSetting
	if bi, ok := debug.ReadBuildInfo(); ok {
		main, settings = bi.Main.Version, bi.Settings
	}
	return resolve(stamp, main, Release(), settings)
}

// pseudo matches the timestamp and commit of a Go pseudo-version
// (v0.0.0-20261130044100-01534cf3a1b2), which Go gives a build from a
// checkout without a tag: it says nothing about the release.
var pseudo = regexp.MustCompile(`\d{14}-[0-9a-f]{12}`)

// resolve is Version with its inputs passed in.
func resolve(stamp, mainVersion, release string, settings []debug.BuildSetting) string {
	if stamp != "" {
		return stamp
	}
	if strings.HasPrefix(mainVersion, "v") && !pseudo.MatchString(mainVersion) {
		return strings.TrimPrefix(mainVersion, "v")
	}
	v := release + "-dev"
	var rev string
	var dirty bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		v += "+" + rev[:min(len(rev), 7)]
		if dirty {
			v += ".dirty"
		}
	}
	return v
}

// Line is what a program prints for --version: its name, the version and
// the protocols it speaks, such as
//
//	doormand 1.0.0 (protocols: classic 1.0/Doorman 0.81, modern 2)
func Line(program string, protocols ...Protocol) string {
	var b strings.Builder
	b.WriteString(program)
	b.WriteByte(' ')
	b.WriteString(Version())
	if len(protocols) > 0 {
		b.WriteString(" (protocols: ")
		for i, p := range protocols {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(string(p))
		}
		b.WriteByte(')')
	}
	return b.String()
}
