package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/doorman-project/doorman/knocker"
)

// defaultWait is how long --wait and --proxy try the door when given no
// duration.
const defaultWait = 5 * time.Second

// usageText is printed by -h and after a usage error. TestHelpNamesEveryOption
// keeps it in step with newFlagSet.
const usageText = `usage: knock [options] host service
       knock --proxy [options] host port
       knock keygen [-f cfgpath] [FILE]
       knock pubkey [-f cfgpath] [FILE]

Send one Doorman knock to host asking it to open the TCP port service
(a number or a name such as ssh) for one connection from this host.

  -h, --help               show this help
  -v, --verbose            print what is sent (on stderr)
  -f, --config FILE        configuration file (default ~/.knockcf)
  -g, --group NAME         group name (overrides the config's group)
  -p, --port PORT          doorman's UDP port (default: config, else 1001)
  -s, --secret SECRET      the group's secret. Every user of this machine can
                           read it in the process list (ps): prefer the config
                           file, --secret-file or --secret-stdin
      --secret-file FILE   read the secret from FILE, which holds only the
                           secret and must be private (chmod 600 FILE)
      --secret-stdin       read the secret from the first line of stdin
                           (without echo on a terminal)
      --source MODE        the source address a modern knock states: local
                           (the address this host sends from; the default),
                           seen (none: the doorman takes the address it sees,
                           for clients behind NAT) or an IP address
                           (default: the config's source record)
  -r, --run "PROG ARGS"    run PROG 0.1 s after the knock; %H% is the host,
                           %P% the service; -r0, -rX, -rx or "" disable the
                           config's run record
  -4, --ipv4               knock over IPv4 only
  -6, --ipv6               knock over IPv6 only
      --wait[=DURATION]    confirm that the door opens (trying for DURATION,
                           default 5s), then knock again so that a fresh door
                           waits for your own connection; exit 0 if it opened,
                           1 if not
      --proxy              then connect through the door and relay stdin and
                           stdout, for ssh's ProxyCommand (gives up after the
                           --wait duration)
      --dry-run, --print   print the payload and its hex (a modern knock: its
                           hex) instead of sending
      --tag N              fixed tag for a classic --dry-run (test vectors only)
      --version            print the version and protocols

The secret is the first of: -s, --secret-file, --secret-stdin, the config's
secret record, and a prompt (one line of stdin if it is not a terminal).

Modern knocks: a host with a "server HOST KEY" record in the config gets a
modern knock, which proves your key pair instead of sending a group and
secret, and is encrypted to the doorman's public key KEY (doormand pubkey
prints it). Your private key is the config's private-key file, else
~/.knock.key.
  knock keygen [FILE]      make a key pair: write a new private key to FILE
                           (default: the key file above; never replaced) and
                           print its public key, for the doorman's guest list
  knock pubkey [FILE]      print the public key of the private key in FILE
A host named keygen or pubkey is written with a final dot: knock keygen. ssh

A door lets exactly one connection through, and nothing answers a knock.
For ssh, let knock make that connection:
    ssh -o ProxyCommand='knock --proxy %h %p' host
Otherwise --wait proves the door opens by connecting through it, which uses
it up, then knocks again; connect within the server's waitfor (10 s unless
configured):
    knock --wait host ssh && ssh host
--wait and --proxy ignore the config's run record and cannot be combined
with -r.

Exit status: 0 knock sent (and door open with --wait/--proxy, or the run
program's own status); 1 door not opened or network error; 2 usage or
configuration error.
`

// options is a parsed command line. The *Set fields tell a value given on
// the command line from the default, since the config fills in the rest.
type options struct {
	help, verbose, version, dryRun, proxy bool
	ipv4, ipv6, secretStdin               bool

	config     string
	configSet  bool
	group      string
	port       uint16
	secret     string
	secretSet  bool
	secretFile string
	run        string
	runSet     bool
	wait       time.Duration
	waitSet    bool
	network    string // "udp4", "udp6" or "" for either
	tag        *uint32
	source     *sourceValue // nil unless --source was given
	// classicOnly lists the options given that only a classic knock
	// uses, as typed in messages.
	classicOnly []string

	host, service string
}

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

// newFlagSet defines knock's options, writing into o; usageText documents
// them. Short options follow getopt, as 0.81 read them: a value may be glued
// (-r0, -gmygroup), switches cluster (-v4), options and operands mix and
// "--" ends the options.
func newFlagSet(o *options) *pflag.FlagSet {
	fs := pflag.NewFlagSet("knock", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned and printed by run
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "print" {
			name = "dry-run"
		}
		return pflag.NormalizedName(name)
	})

	switchP := func(p *bool, name, short, usage string) {
		fs.VarPF((*switchValue)(p), name, short, usage).NoOptDefVal = "true"
	}
	text := func(p *string, name, short, usage, ifEmpty string) {
		fs.VarP(&textValue{p: p, ifEmpty: ifEmpty}, name, short, usage)
	}

	switchP(&o.help, "help", "h", "show this help")
	switchP(&o.verbose, "verbose", "v", "print what is sent")
	text(&o.config, "config", "f", "configuration file", "-f needs a file name")
	text(&o.group, "group", "g", "group name", "")
	fs.VarP(portValue{&o.port}, "port", "p", "doorman's UDP port")
	text(&o.secret, "secret", "s", "the secret (visible in ps)", "-s needs a secret")
	text(&o.secretFile, "secret-file", "", "file holding only the secret", "--secret-file needs a file name")
	switchP(&o.secretStdin, "secret-stdin", "", "secret on stdin's first line")
	fs.Var(sourceFlag{&o.source}, "source", "the source a modern knock states")
	text(&o.run, "run", "r", "program to run after the knock", "")
	switchP(&o.ipv4, "ipv4", "4", "knock over IPv4 only")
	switchP(&o.ipv6, "ipv6", "6", "knock over IPv6 only")
	fs.VarPF(waitValue{&o.wait}, "wait", "", "confirm the door, then knock again").NoOptDefVal = defaultWait.String()
	switchP(&o.proxy, "proxy", "", "relay stdin and stdout through the door")
	switchP(&o.dryRun, "dry-run", "", "print instead of sending")
	fs.Var(tagValue{&o.tag}, "tag", "fixed tag for --dry-run")
	switchP(&o.version, "version", "", "print the version")
	return fs
}

// parseArgs reads knock's command line (CLASSIC-11.3).
func parseArgs(args []string) (*options, error) {
	o := &options{}
	fs := newFlagSet(o)
	if err := fs.Parse(getoptEquals(fs, args)); err != nil {
		return nil, flagError(err)
	}
	o.configSet = fs.Changed("config")
	o.secretSet = fs.Changed("secret")
	o.runSet = fs.Changed("run")
	o.waitSet = fs.Changed("wait")
	if o.help || o.version {
		return o, nil
	}
	operands := fs.Args()
	if len(operands) != 2 {
		return nil, usageErr("want host and service, have %d operands", len(operands))
	}
	o.host, o.service = operands[0], operands[1]
	switch {
	case o.ipv4 && o.ipv6:
		return nil, usageErr("-4 and -6 exclude each other")
	case o.ipv4:
		o.network = "udp4"
	case o.ipv6:
		o.network = "udp6"
	}
	o.classicOnly = changed(fs, "group", "secret", "secret-file", "secret-stdin", "tag")
	if given := changed(fs, "secret", "secret-file", "secret-stdin"); len(given) > 1 {
		return nil, usageErr("%s exclude each other: give the secret one way", strings.Join(given, " and "))
	}
	if o.tag != nil && !o.dryRun {
		return nil, usageErr("--tag is only for --dry-run: a repeated tag makes a replayed knock")
	}
	if o.runSet && (o.waitSet || o.proxy) {
		return nil, usageErr("-r cannot be combined with --wait or --proxy; run the program after knock: knock --wait host service && program")
	}
	if o.secretStdin && o.proxy {
		return nil, usageErr("--secret-stdin cannot be combined with --proxy: stdin carries the connection")
	}
	if !o.waitSet {
		o.wait = defaultWait
	}
	return o, nil
}

// changed returns the options among names given on the command line, as
// typed in messages.
func changed(fs *pflag.FlagSet, names ...string) []string {
	var given []string
	for _, n := range names {
		if f := fs.Lookup(n); f.Changed {
			given = append(given, optionName(f))
		}
	}
	return given
}

// optionName is how messages name an option: its short form if it has one,
// as 0.81 users know them.
func optionName(f *pflag.Flag) string {
	if f.Shorthand != "" {
		return "-" + f.Shorthand
	}
	return "--" + f.Name
}

// getoptEquals rewrites a glued short value that starts with '=' ("-s=x")
// as two arguments ("-s" "=x"). Reason: getopt, and so 0.81, reads such a
// value verbatim, while pflag drops the '=' ('=' is allowed in secrets and
// group names). Arguments that are the values of other options, and all
// after "--", are left alone.
func getoptEquals(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args)+1)
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		switch {
		case a == "--":
			return append(out, args[i+1:]...)
		case strings.HasPrefix(a, "--"):
			if f := fs.Lookup(a[2:]); f != nil && f.NoOptDefVal == "" && i+1 < len(args) {
				i++ // "--name value": the value is the next argument
				out = append(out, args[i])
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				f := fs.ShorthandLookup(a[j : j+1])
				if f == nil || f.NoOptDefVal != "" {
					continue // a switch, or unknown (Parse reports it)
				}
				if j+1 == len(a) && i+1 < len(args) {
					i++ // "-g value"
					out = append(out, args[i])
				} else if j+1 < len(a) && a[j+1] == '=' {
					out[len(out)-1] = a[:j+1]
					out = append(out, a[j+1:])
				}
				break
			}
		}
	}
	return out
}

// flagError turns pflag's typed errors into messages that name the option
// as the user typed it.
func flagError(err error) error {
	var (
		unknown *pflag.NotExistError
		missing *pflag.ValueRequiredError
		invalid *pflag.InvalidValueError
		syntax  *pflag.InvalidSyntaxError
	)
	switch {
	case errors.As(err, &unknown):
		name := "--" + unknown.GetSpecifiedName()
		if unknown.GetSpecifiedShortnames() != "" {
			name = "-" + unknown.GetSpecifiedName()
		}
		return usageErr("unknown option %s", name)
	case errors.As(err, &missing):
		name := "--" + missing.GetSpecifiedName()
		if missing.GetSpecifiedShortnames() != "" {
			name = "-" + missing.GetSpecifiedName()
		}
		return usageErr("%s needs a value", name)
	case errors.As(err, &invalid):
		switch cause := invalid.Unwrap(); {
		case errors.Is(cause, errNoValue):
			return usageErr("--%s takes no value", invalid.GetFlag().Name)
		case errors.Is(cause, errUsage):
			return cause
		default:
			return usageErr("%s %q: %v", optionName(invalid.GetFlag()), invalid.GetValue(), cause)
		}
	case errors.As(err, &syntax):
		return usageErr("bad option %q", syntax.GetSpecifiedFlag())
	}
	return usageErr("%v", err)
}

// errNoValue: a switch was given a value (--verbose=1).
var errNoValue = errors.New("takes no value")

// switchValue is an option without a value. Unlike pflag's bool it refuses
// "--verbose=1" rather than reading it as true.
type switchValue bool

func (v *switchValue) Set(s string) error {
	if s != "true" { // "true" is what pflag passes for the bare switch
		return errNoValue
	}
	*v = true
	return nil
}
func (v *switchValue) String() string { return strconv.FormatBool(bool(*v)) }
func (v *switchValue) Type() string   { return "bool" }

// textValue is a string option; ifEmpty, when set, refuses an empty value.
type textValue struct {
	p       *string
	ifEmpty string
}

func (v *textValue) Set(s string) error {
	if s == "" && v.ifEmpty != "" {
		return usageErr("%s", v.ifEmpty)
	}
	*v.p = s
	return nil
}
func (v *textValue) String() string { return *v.p }
func (v *textValue) Type() string   { return "string" }

type portValue struct{ p *uint16 }

func (v portValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return usageErr("-p %q: not a UDP port 1-65535", s)
	}
	*v.p = uint16(n)
	return nil
}
func (v portValue) String() string { return "" }
func (v portValue) Type() string   { return "port" }

type tagValue struct{ p **uint32 }

func (v tagValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return usageErr("--tag %q: not a number 0-4294967295", s)
	}
	t := uint32(n)
	*v.p = &t
	return nil
}
func (v tagValue) String() string { return "" }
func (v tagValue) Type() string   { return "uint32" }

// sourceValue is --source: knocker.ParseSource's result.
type sourceValue struct {
	mode knocker.SourceMode
	addr netip.Addr
}

type sourceFlag struct{ p **sourceValue }

func (v sourceFlag) Set(s string) error {
	mode, addr, err := knocker.ParseSource(s)
	if err != nil {
		return usageErr("--source: %v", err)
	}
	*v.p = &sourceValue{mode, addr}
	return nil
}
func (v sourceFlag) String() string { return "" }
func (v sourceFlag) Type() string   { return "source" }

type waitValue struct{ p *time.Duration }

func (v waitValue) Set(s string) error {
	d, err := parseWait(s)
	if err != nil {
		return err
	}
	*v.p = d
	return nil
}
func (v waitValue) String() string { return "" }
func (v waitValue) Type() string   { return "duration" }

// parseWait reads a Go duration ("2s", "500ms") or a plain number of seconds.
func parseWait(s string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, usageErr("--wait=%q: not a duration such as 5s or 500ms", s)
	}
	if d <= 0 {
		return 0, usageErr("--wait=%q: must be positive", s)
	}
	return d, nil
}
