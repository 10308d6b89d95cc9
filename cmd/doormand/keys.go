package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/protocol"
	"github.com/spf13/pflag"
)

// keyUsage is printed by "doormand keygen -h" and "doormand pubkey -h".
const keyUsage = `usage: doormand keygen [-D] [-f config-file] [FILE]
       doormand pubkey [-D] [-f config-file]

keygen writes a new private key for modern knocks to FILE (default: the
configuration's private-key, ` + config.DefaultPrivateKeyPath + ` unless set),
mode 0600, and prints its public key: every knocker's configuration names
it in a server record. An existing file is never replaced. A missing
directory of the configured file is created, mode 0700.
pubkey prints the public key of the configured private key.

  -h, --help            show this help
  -D, --debug           skip the ownership checks of the files
  -f, --config FILE     configuration (default ` + config.DefaultConfigPath + `)
`

// isKeyCommand reports whether args start with a key command, which run
// hands to keyCommand.
func isKeyCommand(args []string) bool {
	return len(args) > 0 && (args[0] == "keygen" || args[0] == "pubkey")
}

// keyCommand runs "doormand keygen [FILE]" and "doormand pubkey"
// (MODERN-12.23) and returns the exit status. The public key goes to
// stdout alone on one line, as wg pubkey prints it; everything else goes
// to stderr.
func keyCommand(name string, args []string, stdout, stderr io.Writer) int {
	flags := pflag.NewFlagSet("doormand "+name, pflag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(flags.Output(), keyUsage) }
	var help, debug bool
	var cfgPath string
	flags.BoolVarP(&help, "help", "h", false, "show this help")
	flags.BoolVarP(&debug, "debug", "D", false, "skip the ownership checks")
	flags.StringVarP(&cfgPath, "config", "f", config.DefaultConfigPath, "configuration file")
	if err := flags.Parse(args); err != nil {
		fmt.Fprintf(stderr, "doormand %s: %v\n", name, err)
		flags.Usage()
		return 2
	}
	if help {
		flags.SetOutput(stdout)
		flags.Usage()
		return 0
	}
	maxArgs := 1
	if name == "pubkey" {
		maxArgs = 0
	}
	if flags.NArg() > maxArgs {
		fmt.Fprintf(stderr, "doormand %s: unexpected argument %q\n", name, flags.Arg(maxArgs))
		flags.Usage()
		return 2
	}
	cfgSet := flags.Changed("config")

	if name == "pubkey" {
		d, _, err := config.LoadDaemon(cfgPath, !debug)
		if err != nil {
			fmt.Fprintf(stderr, "doormand pubkey: %v\n", err)
			return 1
		}
		key, err := config.LoadPrivateKey(d.PrivateKey, !debug)
		if err != nil {
			fmt.Fprintf(stderr, "doormand pubkey: %v\n", err)
			if errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(stderr, "doormand pubkey: make the key with: doormand keygen%s\n", configArg(cfgSet, cfgPath))
			}
			return 1
		}
		fmt.Fprintln(stdout, key.Public())
		clear(key[:])
		return 0
	}

	path := flags.Arg(0)
	if path == "" {
		d, _, err := config.LoadDaemon(cfgPath, !debug)
		switch {
		case err == nil:
			path = d.PrivateKey
		case errors.Is(err, fs.ErrNotExist) && !cfgSet:
			// A fresh install: the key may come before the configuration.
			path = config.DefaultPrivateKeyPath
		default:
			fmt.Fprintf(stderr, "doormand keygen: %v\n", err)
			return 1
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			fmt.Fprintf(stderr, "doormand keygen: %v\n", err)
			return 1
		}
	}
	key, err := protocol.NewPrivateKey(rand.Reader)
	if err == nil {
		err = config.WritePrivateKey(path, &key)
	}
	if err != nil {
		fmt.Fprintf(stderr, "doormand keygen: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, key.Public())
	clear(key[:])
	fmt.Fprintf(stderr, "doormand keygen: wrote a new private key to %s; give the public key above to every knocker, for its server record\n", path)
	if !debug {
		if err := config.CheckOwner(path, config.KindPrivateKey); err != nil {
			fmt.Fprintf(stderr, "doormand keygen: warning: doormand will refuse it unless run with -D: %v\n", err)
		}
	}
	return 0
}

// configArg is the -f option that repeats the configuration given, for
// messages.
func configArg(set bool, path string) string {
	if set {
		return " -f " + path
	}
	return ""
}
