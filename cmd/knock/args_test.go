package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/doorman-project/doorman/knocker"
)

// TestParseGetopt checks the forms of CLASSIC-11.3 that getopt, and so
// 0.81, reads in a particular way, field by field.
func TestParseGetopt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		check func(*options) bool
	}{
		{"-r0 glued", []string{"-r0", "h", "s"}, func(o *options) bool { return o.runSet && o.run == "0" }},
		{"-rX glued", []string{"-rX", "h", "s"}, func(o *options) bool { return o.runSet && o.run == "X" }},
		{"-r empty", []string{"-r", "", "h", "s"}, func(o *options) bool { return o.runSet && o.run == "" }},
		{"-r value with dash", []string{"-r", "-x", "h", "s"}, func(o *options) bool { return o.run == "-x" && o.host == "h" }},
		{"-r value with spaces", []string{"-r", "ssh -p %P% %H%", "h", "s"}, func(o *options) bool { return o.run == "ssh -p %P% %H%" }},
		{"glued value with =", []string{"-s=x", "h", "s"}, func(o *options) bool { return o.secret == "=x" && o.secretSet }},
		{"clustered glued value with =", []string{"-vs=x", "h", "s"}, func(o *options) bool { return o.verbose && o.secret == "=x" }},
		{"= value as next argument", []string{"-g", "-s=x", "h", "s"}, func(o *options) bool { return o.group == "-s=x" && !o.secretSet }},
		{"long option value", []string{"--group", "-s=x", "h", "s"}, func(o *options) bool { return o.group == "-s=x" && !o.secretSet }},
		{"long option with =", []string{"--secret=x", "h", "s"}, func(o *options) bool { return o.secret == "x" }},
		{"long option with == ", []string{"--secret==x", "h", "s"}, func(o *options) bool { return o.secret == "=x" }},
		{"after --", []string{"-g", "a", "--", "-s=x", "s"}, func(o *options) bool { return o.host == "-s=x" && !o.secretSet }},
		{"cluster ends in a value option", []string{"-4vg", "alice", "h", "s"}, func(o *options) bool { return o.network == "udp4" && o.verbose && o.group == "alice" }},
		{"-6", []string{"-6", "h", "s"}, func(o *options) bool { return o.network == "udp6" }},
		{"--print is --dry-run", []string{"--print", "h", "s"}, func(o *options) bool { return o.dryRun }},
		{"--wait alone", []string{"--wait", "h", "s"}, func(o *options) bool { return o.waitSet && o.wait == defaultWait }},
		{"--wait=2", []string{"--wait=2", "h", "s"}, func(o *options) bool { return o.waitSet && o.wait.Seconds() == 2 }},
		{"operand -", []string{"-", "s"}, func(o *options) bool { return o.host == "-" }},
		{"secret file", []string{"--secret-file", "f", "h", "s"}, func(o *options) bool { return o.secretFile == "f" && !o.secretSet }},
		{"secret stdin", []string{"--secret-stdin", "h", "s"}, func(o *options) bool { return o.secretStdin }},
	} {
		o, err := parseArgs(tc.args)
		if err != nil || !tc.check(o) {
			t.Errorf("%s: %q: %+v, %v", tc.name, tc.args, o, err)
		}
	}
}

// TestFlagErrors: unknown options and missing values give a usage error
// (exit 2) naming the option as typed.
func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-z", "h", "22"}, "unknown option -z"},
		{[]string{"-vz", "h", "22"}, "unknown option -z"},
		{[]string{"--frob", "h", "22"}, "unknown option --frob"},
		{[]string{"--frob=1", "h", "22"}, "unknown option --frob"},
		{[]string{"--Verbose", "h", "22"}, "unknown option --Verbose"},
		{[]string{"---x", "h", "22"}, `bad option "---x"`},
		{[]string{"h", "22", "-r"}, "-r needs a value"},
		{[]string{"h", "22", "-vf"}, "-f needs a value"},
		{[]string{"h", "22", "-p"}, "-p needs a value"},
		{[]string{"h", "22", "--config"}, "--config needs a value"},
		{[]string{"h", "22", "--tag"}, "--tag needs a value"},
		{[]string{"h", "22", "--secret-file"}, "--secret-file needs a value"},
		{[]string{"--secret-file=", "h", "22"}, "--secret-file needs a file name"},
		{[]string{"--dry-run=yes", "h", "22"}, "--dry-run takes no value"},
		{[]string{"--secret-stdin=1", "h", "22"}, "--secret-stdin takes no value"},
		{[]string{"-v=1", "h", "22"}, "--verbose takes no value"},
		{[]string{"-s", "x", "--secret-file", "f", "h", "22"}, "-s and --secret-file exclude each other"},
		{[]string{"--secret-file", "f", "--secret-stdin", "h", "22"}, "--secret-file and --secret-stdin exclude each other"},
		{[]string{"--secret-stdin", "--proxy", "h", "22"}, "--secret-stdin cannot be combined with --proxy"},
	} {
		r := knock(t, "", "", tc.args...)
		if r.code != exitUsage || r.stdout != "" || !strings.HasPrefix(r.stderr, "knock: ") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
		if _, err := parseArgs(tc.args); !errors.Is(err, errUsage) {
			t.Errorf("%q: parseArgs error %v does not wrap errUsage", tc.args, err)
		}
	}
}

// TestHelpNamesEveryOption keeps usageText in step with the flag set, and
// checks that it tells -s shows in ps (CLASSIC-11.5/1).
func TestHelpNamesEveryOption(t *testing.T) {
	newFlagSet(&options{}).VisitAll(func(f *pflag.Flag) {
		want := "--" + f.Name
		if f.Shorthand != "" {
			want = "-" + f.Shorthand + ", --" + f.Name
		}
		if !strings.Contains(usageText, "  "+want) {
			t.Errorf("usage text does not document %s", want)
		}
	})
	if !strings.Contains(usageText, "process list (ps)") {
		t.Error("usage text does not say that -s shows in ps")
	}
}

// FuzzParseArgs: any command line parses or fails with a usage error; it
// never panics.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"-r0 h s", "-s=x h s", "-vs=x -g -s=x h s", "--wait=2 -- -x s", "-4vg a h s", "--secret-file f --secret-stdin h s", "--source=seen h s", "--source 198.18.0.1 -6 h s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		o, err := parseArgs(strings.Split(line, " "))
		if err != nil {
			if !errors.Is(err, errUsage) {
				t.Fatalf("%q: error %v is not a usage error", line, err)
			}
			return
		}
		if !o.help && !o.version && (o.wait <= 0 || (o.tag != nil && !o.dryRun) ||
			(o.source != nil && (o.source.mode == knocker.SourceFixed) != o.source.addr.IsValid())) {
			t.Fatalf("%q: accepted %+v", line, o)
		}
	})
}
