package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/doorman-project/doorman/knocker"
	"github.com/doorman-project/doorman/protocol"
)

// keyUsage is printed by "knock keygen -h" and "knock pubkey -h".
const keyUsage = `usage: knock keygen [-f cfgpath] [FILE]
       knock pubkey [-f cfgpath] [FILE]

keygen writes a new private key to FILE, readable by you only, and prints
its public key: give that to the doorman's administrator, who adds it to
the guest list as pubkey.KEY. An existing file is never replaced.
pubkey prints the public key of the private key in FILE.

FILE defaults to the key file knock uses: the configuration's private-key
record, else ~/.knock.key.

  -h, --help           show this help
  -f, --config FILE    configuration file (default ~/.knockcf)
`

// keyCommand runs "knock keygen [FILE]" and "knock pubkey [FILE]"
// (MODERN-12.23). A public key goes to stdout alone on one line, as wg
// pubkey prints it; everything else goes to stderr.
func keyCommand(name string, args []string, stdout, stderr io.Writer) int {
	o := &options{}
	fs := pflag.NewFlagSet("knock "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.VarPF((*switchValue)(&o.help), "help", "h", "show this help").NoOptDefVal = "true"
	fs.VarP(&textValue{p: &o.config, ifEmpty: "-f needs a file name"}, "config", "f", "configuration file")
	err := fs.Parse(args)
	if err != nil {
		err = flagError(err)
	} else if fs.NArg() > 1 {
		err = usageErr("want at most one key file, have %d operands", fs.NArg())
	}
	if err != nil {
		fmt.Fprintf(stderr, "knock %s: %v\n", name, err)
		fmt.Fprintf(stderr, "Try 'knock %s --help'.\n", name)
		return exitUsage
	}
	if o.help {
		io.WriteString(stdout, keyUsage)
		return exitOK
	}
	o.configSet = fs.Changed("config")

	// The key file knock itself would use: the default FILE, and what
	// keygen compares an explicit FILE with.
	var used string
	cfg, cfgErr := loadConfig(o)
	if cfgErr == nil {
		used, cfgErr = keyPath(cfg)
	}
	path := fs.Arg(0)
	if path == "" {
		if cfgErr != nil {
			fmt.Fprintf(stderr, "knock %s: %v\n", name, cfgErr)
			return exitUsage
		}
		path = used
	}

	if name == "pubkey" {
		key, err := knocker.LoadPrivateKey(path)
		if err != nil {
			fmt.Fprintf(stderr, "knock pubkey: %v\n", err)
			return exitUsage
		}
		fmt.Fprintln(stdout, key.Public())
		clear(key[:])
		return exitOK
	}

	key, err := protocol.NewPrivateKey(rand.Reader)
	if err == nil {
		err = knocker.WritePrivateKey(path, &key)
	}
	if err != nil {
		fmt.Fprintf(stderr, "knock keygen: %v\n", err)
		if errors.Is(err, knocker.ErrKeyExists) {
			fmt.Fprintf(stderr, "knock keygen: its public key: knock pubkey%s %s\n", keygenArgs(o), path)
		}
		return exitUsage
	}
	fmt.Fprintln(stdout, key.Public())
	clear(key[:])
	fmt.Fprintf(stderr, "knock keygen: wrote a new private key to %s; give the public key above to the doorman's administrator\n", path)
	if used != "" && !samePath(path, used) {
		fmt.Fprintf(stderr, "knock keygen: knock reads its key from %s: to use this one, add to %s:\n    private-key %s\n",
			used, configName(o), absPath(path))
	}
	return exitOK
}

// keyPath returns the knocker's private key file: the configuration's
// private-key record, else the default (MODERN-12.22).
func keyPath(cfg *knocker.Config) (string, error) {
	if cfg.Modern.PrivateKeyFile != "" {
		return cfg.Modern.PrivateKeyFile, nil
	}
	if p := knocker.DefaultKeyPath(); p != "" {
		return p, nil
	}
	return "", errors.New("no private key file: the home directory is unknown; give a private-key record")
}

// keygenArgs is the -f option that makes "knock keygen" use the same
// configuration as the command line o, for messages.
func keygenArgs(o *options) string {
	if o.configSet {
		return " -f " + o.config
	}
	return ""
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func samePath(a, b string) bool { return absPath(a) == absPath(b) }
