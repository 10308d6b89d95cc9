package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// defaultWait is how long --wait and --proxy try the door when given no
// duration.
const defaultWait = 5 * time.Second

// usageText is printed by -h and after a usage error.
const usageText = `usage: knock [options] host service
       knock --proxy [options] host port

Send one Doorman knock to host asking it to open the TCP port service
(a number or a name such as ssh).

  -h, --help              show this help
  -v, --verbose           print what is sent (on stderr)
  -f, --config PATH       configuration file (default ~/.knockcf)
  -g, --group NAME        group name (overrides the config's group)
  -p, --port PORT         doorman's UDP port (default: config, else 1001)
  -s, --secret SECRET     group secret (default: config, else prompt)
  -r, --run "PROG ARGS"   run PROG 0.1 s after the knock; %H% is the host,
                          %P% the service; -r0, -rX, -rx or "" disable the
                          config's run record
  -4, -6                  knock over IPv4 / IPv6 only
      --wait[=DURATION]   then try the TCP port until it opens (default 5s);
                          exit 0 if it did, 1 if not
      --proxy             then connect through the door and relay stdin and
                          stdout: ssh -o ProxyCommand='knock --proxy %h %p' host
      --dry-run, --print  print the payload and its hex instead of sending
      --tag N             fixed tag for --dry-run (test vectors only)
      --version           print the version and protocols

--wait and --proxy use up the door's one connection, so they ignore the
config's run record and cannot be combined with -r.

Exit status: 0 knock sent (and door open with --wait/--proxy, or the run
program's own status); 1 door not opened or network error; 2 usage or
configuration error.
`

// options is a parsed command line. The *Set fields tell a value given on
// the command line from the default, since the config fills in the rest.
type options struct {
	help, verbose, version, dryRun, proxy bool

	config    string
	configSet bool
	group     string
	port      uint16
	secret    string
	secretSet bool
	run       string
	runSet    bool
	wait      time.Duration
	waitSet   bool
	network   string // "udp4", "udp6" or "" for either
	tag       *uint32

	host, service string
}

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

// parseArgs reads a getopt-style command line: short options may be glued
// to their value (-r0, -gmygroup) and clustered (-v4), long options take
// "--name value" or "--name=value", options and operands may mix, and "--"
// ends the options. Go's flag package cannot read -r0 as -r with value 0,
// which 0.81 users type.
func parseArgs(args []string) (*options, error) {
	o := &options{}
	var operands []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			operands = append(operands, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			takes, ok := longTakesValue(name)
			if !ok {
				return nil, usageErr("unknown option --%s", name)
			}
			switch {
			case takes && !hasVal:
				if i+1 >= len(args) {
					return nil, usageErr("--%s needs a value", name)
				}
				i++
				val = args[i]
			case !takes && hasVal && name != "wait":
				return nil, usageErr("--%s takes no value", name)
			}
			if err := o.set(name, val, hasVal || takes); err != nil {
				return nil, err
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				name, takes, ok := shortName(a[j])
				if !ok {
					return nil, usageErr("unknown option -%c", a[j])
				}
				if !takes {
					if err := o.set(name, "", false); err != nil {
						return nil, err
					}
					continue
				}
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, usageErr("-%c needs a value", a[j])
					}
					i++
					val = args[i]
				}
				if err := o.set(name, val, true); err != nil {
					return nil, err
				}
				break
			}
		default:
			operands = append(operands, a)
		}
	}
	if o.help || o.version {
		return o, nil
	}
	if len(operands) != 2 {
		return nil, usageErr("want host and service, have %d operands", len(operands))
	}
	o.host, o.service = operands[0], operands[1]
	if o.tag != nil && !o.dryRun {
		return nil, usageErr("--tag is only for --dry-run: a repeated tag makes a replayed knock")
	}
	if o.runSet && (o.waitSet || o.proxy) {
		return nil, usageErr("-r cannot be combined with --wait or --proxy: both need the door's one connection")
	}
	if !o.waitSet {
		o.wait = defaultWait
	}
	return o, nil
}

func shortName(c byte) (name string, takes, ok bool) {
	switch c {
	case 'h':
		return "help", false, true
	case 'v':
		return "verbose", false, true
	case '4':
		return "4", false, true
	case '6':
		return "6", false, true
	case 'f':
		return "config", true, true
	case 'g':
		return "group", true, true
	case 'p':
		return "port", true, true
	case 's':
		return "secret", true, true
	case 'r':
		return "run", true, true
	}
	return "", false, false
}

func longTakesValue(name string) (takes, ok bool) {
	switch name {
	case "help", "verbose", "wait", "proxy", "dry-run", "print", "version":
		return false, true
	case "config", "group", "port", "secret", "run", "tag":
		return true, true
	}
	return false, false
}

func (o *options) set(name, val string, hasVal bool) error {
	switch name {
	case "help":
		o.help = true
	case "verbose":
		o.verbose = true
	case "version":
		o.version = true
	case "dry-run", "print":
		o.dryRun = true
	case "proxy":
		o.proxy = true
	case "4", "6":
		nw := "udp" + name
		if o.network != "" && o.network != nw {
			return usageErr("-4 and -6 exclude each other")
		}
		o.network = nw
	case "config":
		if val == "" {
			return usageErr("-f needs a file name")
		}
		o.config, o.configSet = val, true
	case "group":
		o.group = val
	case "port":
		n, err := strconv.ParseUint(val, 10, 16)
		if err != nil || n == 0 {
			return usageErr("-p %q: not a UDP port 1-65535", val)
		}
		o.port = uint16(n)
	case "secret":
		if val == "" {
			return usageErr("-s needs a secret")
		}
		o.secret, o.secretSet = val, true
	case "run":
		o.run, o.runSet = val, true
	case "tag":
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return usageErr("--tag %q: not a number 0-4294967295", val)
		}
		t := uint32(n)
		o.tag = &t
	case "wait":
		o.waitSet = true
		if !hasVal {
			o.wait = defaultWait
			return nil
		}
		d, err := parseWait(val)
		if err != nil {
			return err
		}
		o.wait = d
	}
	return nil
}

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
