//go:build linux

package main

import (
	"bytes"
	"regexp"
	"testing"
)

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--version"}, &out, &errb)
	want := regexp.MustCompile(`^doorman-sim \d+\.\d+\.\d+\S* \(protocols: classic 1\.0/Doorman 0\.81, modern 2\)\n$`)
	if code != 0 || !want.MatchString(out.String()) || errb.Len() != 0 {
		t.Errorf("doorman-sim --version: exit %d, stdout %q, stderr %q; want exit 0 and a line matching %s", code, out.String(), errb.String(), want)
	}
}
