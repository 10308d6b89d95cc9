package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/daemon/capture"
)

func parseD(t *testing.T, text string) (*Daemon, []Warning, error) {
	t.Helper()
	return parseDaemon("doormand.cf", strings.NewReader(text), StaticResolver{Ports: map[string]uint16{"knockd": 7000}})
}

// joined returns the individual *Error values of a joined error.
func joined(t *testing.T, err error) []*Error {
	t.Helper()
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	var out []*Error
	for _, e := range errs {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %v (%T) is not a *config.Error", e, e)
		}
		out = append(out, ce)
	}
	return out
}

// CLASSIC-8.1, CLASSIC-8.4, CLASSIC-8.5: a Doorman 0.81 doormand.cf loads unchanged.
func TestParseDaemonExample081(t *testing.T) {
	f, err := os.Open("testdata/doormand.cf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, warnings, err := ParseDaemon("doormand.cf", f)
	if err != nil {
		t.Fatalf("ParseDaemon: %v", err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	want := DefaultDaemon()
	want.Interface = "eth0"
	want.FirewallAdd = "/usr/local/etc/doormand/iptables-add"
	want.FirewallDel = "/usr/local/etc/doormand/iptables-del"
	want.HashArchive = "/var/lib/doorman/hash_archive"
	want.LinkHeaderLength = 14
	want.Firewall = FirewallScript // CLASSIC-8.5
	want.Capture = capture.ModeRaw
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got  %+v\nwant %+v", d, want)
	}
}

// CLASSIC-8.4: defaults.
func TestParseDaemonDefaults(t *testing.T) {
	d, warnings, err := parseD(t, "interface eth0\n")
	if err != nil || len(warnings) != 0 {
		t.Fatalf("err %v warnings %v", err, warnings)
	}
	want := &Daemon{
		Restart: Restart{
			Interface: "eth0", Port: 1001, LinkHeaderLength: -1,
			HashArchive: "/var/lib/doorman/replay", HashArchiveSize: 1_000_000,
			PidFile:   "/var/run/doorman.pid",
			FailLimit: 3, FailDelay: 60 * time.Second, Firewall: FirewallNftables, Capture: capture.ModeNetwork,
			NftTable: "doorman", DoorMark: 0x00100000, IptablesChain: "DOORMAN", LogGroup: 1001,
		},
		Reloadable: Reloadable{
			WaitFor: 10 * time.Second, ConnDelay1: 500 * time.Millisecond, ConnDelay2: 5 * time.Second,
			GuestList: "/etc/dd_guestlist", LogLevel: slog.LevelInfo, StatsInterval: 300 * time.Second, MaxDoors: 10000,
			// MODERN-12.21
			ModernWindow: 60 * time.Second, ModernRate: 20, ModernBurst: 5,
			PrivateKey: "/etc/doorman/doormand.key", Classic: true,
		},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got  %+v\nwant %+v", d, want)
	}
}

// CLASSIC-8.1, CLASSIC-8.4: every keyword, in its accepted spellings.
func TestParseDaemonKeywords(t *testing.T) {
	tests := []struct {
		line  string
		check func(d *Daemon) bool
	}{
		{"port 2001", func(d *Daemon) bool { return d.Port == 2001 }},
		{"PORT 65535", func(d *Daemon) bool { return d.Port == 65535 }},
		{"port 1", func(d *Daemon) bool { return d.Port == 1 }},
		{"interface any", func(d *Daemon) bool { return d.Interface == "any" }},
		{"interface enp0s31f6.100", func(d *Daemon) bool { return d.Interface == "enp0s31f6.100" }},
		{"waitfor 30", func(d *Daemon) bool { return d.WaitFor == 30*time.Second }},
		{"WaitFor 2.5s", func(d *Daemon) bool { return d.WaitFor == 2500*time.Millisecond }},
		{"connection-delay-1 250000", func(d *Daemon) bool { return d.ConnDelay1 == 250*time.Millisecond }},
		{"connection_delay_1 2s", func(d *Daemon) bool { return d.ConnDelay1 == 2*time.Second }},
		{"Connection_Delay-1 1000", func(d *Daemon) bool { return d.ConnDelay1 == time.Millisecond }},
		{"connection-delay-2 7", func(d *Daemon) bool { return d.ConnDelay2 == 7*time.Second }},
		{"connection_delay_2 500ms", func(d *Daemon) bool { return d.ConnDelay2 == 500*time.Millisecond }},
		{"link-header-length 0", func(d *Daemon) bool { return d.LinkHeaderLength == 0 && d.Capture == capture.ModeRaw }},
		{"link_header_length 128", func(d *Daemon) bool { return d.LinkHeaderLength == 128 }},
		{"guestlist /etc/doorman/guests", func(d *Daemon) bool { return d.GuestList == "/etc/doorman/guests" }},
		{"guestlist /etc//doorman/./guests", func(d *Daemon) bool { return d.GuestList == "/etc/doorman/guests" }},
		{"hash-archive /var/lib/x", func(d *Daemon) bool { return d.HashArchive == "/var/lib/x" }},
		{"hash_archive_size 1000", func(d *Daemon) bool { return d.HashArchiveSize == 1000 }},
		{"hash-archive-size 5000000", func(d *Daemon) bool { return d.HashArchiveSize == 5000000 }},
		{"logfile /tmp/doorman.log", func(d *Daemon) bool { return d.LogFile == "/tmp/doorman.log" }},
		{"pidfile /run/doorman.pid", func(d *Daemon) bool { return d.PidFile == "/run/doorman.pid" }},
		{"loglevel DEBUG", func(d *Daemon) bool { return d.LogLevel == slog.LevelDebug }},
		{"loglevel info", func(d *Daemon) bool { return d.LogLevel == slog.LevelInfo }},
		{"loglevel NOTICE", func(d *Daemon) bool { return d.LogLevel == LevelNotice }},
		{"loglevel warning", func(d *Daemon) bool { return d.LogLevel == slog.LevelWarn }},
		{"loglevel ERROR", func(d *Daemon) bool { return d.LogLevel == slog.LevelError }},
		{"loglevel CRIT", func(d *Daemon) bool { return d.LogLevel == LevelCrit }},
		{"loglevel ALERT", func(d *Daemon) bool { return d.LogLevel == LevelAlert }},
		{"loglevel EMERG", func(d *Daemon) bool { return d.LogLevel == LevelEmerg }},
		{"firewall iptables", func(d *Daemon) bool { return d.Firewall == FirewallIptables }},
		{"firewall NFTABLES", func(d *Daemon) bool { return d.Firewall == FirewallNftables }},
		{"capture socket", func(d *Daemon) bool { return d.Capture == capture.ModeSocket }},
		{"capture raw", func(d *Daemon) bool { return d.Capture == capture.ModeRaw && d.LinkHeaderLength == -1 }},
		{"capture network", func(d *Daemon) bool { return d.Capture == capture.ModeNetwork }},
		{"nft-table knock_2", func(d *Daemon) bool { return d.NftTable == "knock_2" }},
		{"door-mark 0x200", func(d *Daemon) bool { return d.DoorMark == 0x200 }},
		{"door_mark 0XFFFFFFFF", func(d *Daemon) bool { return d.DoorMark == 0xffffffff }},
		{"door-mark 010", func(d *Daemon) bool { return d.DoorMark == 10 }}, // decimal, not octal
		{"protect 22", func(d *Daemon) bool { return reflect.DeepEqual(d.Protect, []uint16{22}) }},
		{"protect ssh, 2222,80 ssh https", func(d *Daemon) bool { return reflect.DeepEqual(d.Protect, []uint16{22, 80, 443, 2222}) }},
		{"protect knockd", func(d *Daemon) bool { return reflect.DeepEqual(d.Protect, []uint16{7000}) }},
		{"stats-interval 0", func(d *Daemon) bool { return d.StatsInterval == 0 }},
		{"stats_interval 60", func(d *Daemon) bool { return d.StatsInterval == time.Minute }},
		{"stats-interval 1h", func(d *Daemon) bool { return d.StatsInterval == time.Hour }},
		{"iptables-chain KNOCK-1", func(d *Daemon) bool { return d.IptablesChain == "KNOCK-1" }},
		{"nft-log-group 7", func(d *Daemon) bool { return d.LogGroup == 7 }},
		{"max-doors 20000", func(d *Daemon) bool { return d.MaxDoors == 20000 }},
		// MODERN-12.21
		{"private-key /etc/doorman/site.key", func(d *Daemon) bool { return d.PrivateKey == "/etc/doorman/site.key" }},
		{"Private_Key /etc//doorman/./k", func(d *Daemon) bool { return d.PrivateKey == "/etc/doorman/k" }},
		{"classic off", func(d *Daemon) bool { return !d.Classic }},
		{"classic OFF", func(d *Daemon) bool { return !d.Classic }},
		{"classic on", func(d *Daemon) bool { return d.Classic }},
		{"modern-window 1", func(d *Daemon) bool { return d.ModernWindow == time.Second }},
		{"modern_window 3600", func(d *Daemon) bool { return d.ModernWindow == time.Hour }},
		{"modern-window 90s", func(d *Daemon) bool { return d.ModernWindow == 90*time.Second }},
		{"modern-rate 1", func(d *Daemon) bool { return d.ModernRate == 1 }},
		{"modern-rate 100000", func(d *Daemon) bool { return d.ModernRate == 100000 }},
		{"modern-burst 1", func(d *Daemon) bool { return d.ModernBurst == 1 }},
		{"MODERN_BURST 50", func(d *Daemon) bool { return d.ModernBurst == 50 && d.ModernRate == 20 }},
		{"port 1002 # trailing comment", func(d *Daemon) bool { return d.Port == 1002 }},
		{"guestlist /etc/g#1", func(d *Daemon) bool { return d.GuestList == "/etc/g#1" }}, // '#' not after whitespace
		{"\tport\t1003\r", func(d *Daemon) bool { return d.Port == 1003 }},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			d, warnings, err := parseD(t, "interface eth0\n"+tc.line+"\n")
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			for _, w := range warnings {
				if !strings.Contains(tc.line, "interface") {
					t.Errorf("unexpected warning: %v", w)
				}
			}
			if !tc.check(d) {
				t.Errorf("wrong value: %+v", d)
			}
		})
	}
}

// CLASSIC-8.3: every error names file, line, text and rule.
func TestParseDaemonErrors(t *testing.T) {
	tests := []struct {
		line string
		want string // the whole message for line 2
	}{
		{"port 70000", `doormand.cf:2: port "70000": must be 1-65535`},
		{"port 0", `doormand.cf:2: port "0": must be 1-65535`},
		{"port ssh", `doormand.cf:2: port "ssh": must be a number from 1 to 65535`},
		{"port -1", `doormand.cf:2: port "-1": must be a number from 1 to 65535`},
		{"port", `doormand.cf:2: port: needs a value`},
		{"port 1 2", `doormand.cf:2: port "1 2": takes exactly one value`},
		{"interface abcdefghijklmnop", `doormand.cf:2: interface "abcdefghijklmnop": interface names are at most 15 bytes`},
		{"interface a/b", `doormand.cf:2: interface "a/b": not a valid interface name`},
		{"interface ..", `doormand.cf:2: interface "..": not a valid interface name`},
		{"waitfor 0", `doormand.cf:2: waitfor "0": must be between 1s and 1h0m0s`},
		{"waitfor 3601", `doormand.cf:2: waitfor "3601": must be at most 1h0m0s`},
		{"waitfor ten", `doormand.cf:2: waitfor "ten": must be a whole number of seconds or a duration such as 1.5s`},
		{"waitfor -5s", `doormand.cf:2: waitfor "-5s": must be between 1s and 1h0m0s`},
		{"connection-delay-1 0", `doormand.cf:2: connection-delay-1 "0": must be between 1ms and 1m0s`},
		{"connection_delay_1 99999999999999999999", `doormand.cf:2: connection_delay_1 "99999999999999999999": must be a whole number of microseconds or a duration such as 1.5s`},
		{"connection-delay-2 0", `doormand.cf:2: connection-delay-2 "0": must be between 100ms and 1h0m0s`},
		{"link-header-length 129", `doormand.cf:2: link-header-length "129": must be a whole number from 0 to 128`},
		{"link-header-length -1", `doormand.cf:2: link-header-length "-1": must be a whole number from 0 to 128`},
		{"hash-archive-size 0", `doormand.cf:2: hash-archive-size "0": must be a whole number from 1 to 100000000`},
		{"hash-archive-size 100000001", `doormand.cf:2: hash-archive-size "100000001": must be a whole number from 1 to 100000000`},
		{"loglevel VERBOSE", `doormand.cf:2: loglevel "VERBOSE": must be one of DEBUG INFO NOTICE WARNING ERROR CRIT ALERT EMERG`},
		{"fail-limit x", `doormand.cf:2: fail-limit "x": must be a whole number from 0 to 1000000`},
		{"fail-delay x", `doormand.cf:2: fail-delay "x": must be a whole number of seconds or a duration such as 1.5s`},
		{"firewall pf", `doormand.cf:2: firewall "pf": must be nftables, iptables or script`},
		{"capture pcap", `doormand.cf:2: capture "pcap": must be network, raw or socket`},
		{"nft-table 1doorman", `doormand.cf:2: nft-table "1doorman": must be a letter followed by up to 63 letters, digits, '_' or '-'`},
		{"nft-table a;b", `doormand.cf:2: nft-table "a;b": must be a letter followed by up to 63 letters, digits, '_' or '-'`},
		{"door-mark 0", `doormand.cf:2: door-mark "0": must be a non-zero 32-bit number, decimal or 0x hex`},
		{"door-mark 0x100000000", `doormand.cf:2: door-mark "0x100000000": must be a non-zero 32-bit number, decimal or 0x hex`},
		{"door-mark 0xg", `doormand.cf:2: door-mark "0xg": must be a non-zero 32-bit number, decimal or 0x hex`},
		{"protect 0, nosuchservice", `doormand.cf:2: protect "0, nosuchservice": bad ports: "0" (must be 1-65535), "nosuchservice" (unknown service)`},
		{"protect ,", `doormand.cf:2: protect ",": needs at least one port`},
		{"stats-interval -1s", `doormand.cf:2: stats-interval "-1s": must be between 0 and 168h0m0s`},
		{"stats-interval -1", `doormand.cf:2: stats-interval "-1": must be a whole number of seconds or a duration such as 1.5s`},
		{"nft-log-group 0", `doormand.cf:2: nft-log-group "0": must be a whole number from 1 to 65535`},
		{"max-doors 70000", `doormand.cf:2: max-doors "70000": must be a whole number from 1 to 65535`},
		{"iptables-chain INPUT", `doormand.cf:2: iptables-chain "INPUT": must not be a built-in chain: doorman owns and flushes this chain`},
		{"iptables-chain input", `doormand.cf:2: iptables-chain "input": must not be a built-in chain: doorman owns and flushes this chain`},
		{"iptables-chain ABCDEFGHIJKLMNOPQRSTUVWXYZABC", `doormand.cf:2: iptables-chain "ABCDEFGHIJKLMNOPQRSTUVWXYZABC": must be a letter followed by up to 27 letters, digits, '_' or '-'`},
		// MODERN-12.21
		{"private-key /etc/k /etc/j", `doormand.cf:2: private-key "/etc/k /etc/j": takes exactly one value`},
		{"private-key", `doormand.cf:2: private-key: needs a value`},
		{"classic no", `doormand.cf:2: classic "no": must be on or off`},
		{"classic 0", `doormand.cf:2: classic "0": must be on or off`},
		{"modern-window 0", `doormand.cf:2: modern-window "0": must be between 1s and 1h0m0s`},
		{"modern-window 3601", `doormand.cf:2: modern-window "3601": must be at most 1h0m0s`},
		{"modern-window 500ms", `doormand.cf:2: modern-window "500ms": must be between 1s and 1h0m0s`},
		{"modern-window a minute", `doormand.cf:2: modern-window "a minute": takes exactly one value`},
		{"modern-window -1", `doormand.cf:2: modern-window "-1": must be a whole number of seconds or a duration such as 1.5s`},
		{"modern-rate 0", `doormand.cf:2: modern-rate "0": must be a whole number from 1 to 100000`},
		{"modern-rate 100001", `doormand.cf:2: modern-rate "100001": must be a whole number from 1 to 100000`},
		{"modern-rate fast", `doormand.cf:2: modern-rate "fast": must be a whole number from 1 to 100000`},
		{"modern-burst -5", `doormand.cf:2: modern-burst "-5": must be a whole number from 1 to 100000`},
		{"modern-burst 2.5", `doormand.cf:2: modern-burst "2.5": must be a whole number from 1 to 100000`},
		{"iptables-chain -j", `doormand.cf:2: iptables-chain "-j": must be a letter followed by up to 27 letters, digits, '_' or '-'`},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			d, _, err := parseD(t, "interface eth0\n"+tc.line+"\n")
			if err == nil {
				t.Fatalf("no error; got %+v", d)
			}
			if d != nil {
				t.Errorf("Daemon returned with an error")
			}
			errs := joined(t, err)
			if len(errs) != 1 || errs[0].Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
			if errs[0].Line != 2 || errs[0].File != "doormand.cf" {
				t.Errorf("position %s:%d", errs[0].File, errs[0].Line)
			}
		})
	}
}

// CLASSIC-8.4, CLASSIC-8.5: rules across keywords.
func TestParseDaemonCrossChecks(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string // error messages
	}{
		{"interface required", "port 1001\n", []string{`doormand.cf: interface: is required: name the device knocks arrive on`}},
		{"empty file", "", []string{`doormand.cf: interface: is required: name the device knocks arrive on`}},
		{"add without del", "interface eth0\nfirewall-add /a\n", []string{`doormand.cf: firewall-del: is required with firewall script`}},
		{"del without add", "interface eth0\nfirewall-del /a\n", []string{`doormand.cf: firewall-add: is required with firewall script`}},
		{"script without scripts", "interface eth0\nfirewall script\n", []string{
			`doormand.cf:2: firewall-add: is required with firewall script`,
			`doormand.cf:2: firewall-del: is required with firewall script`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseD(t, tc.text)
			errs := joined(t, err)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// CLASSIC-8.3: all errors of a file are reported at once, in line order.
func TestParseDaemonCollectsAllErrors(t *testing.T) {
	text := "port 0\nwaitfor x\n# fine\nloglevel LOUD\nbogus 1\n"
	_, warnings, err := parseD(t, text)
	errs := joined(t, err)
	var lines []int
	for _, e := range errs {
		lines = append(lines, e.Line)
	}
	if want := []int{1, 2, 4, 0}; !reflect.DeepEqual(lines, want) {
		t.Errorf("error lines %v, want %v (%v)", lines, want, err)
	}
	if len(warnings) != 1 || warnings[0].Line != 5 {
		t.Errorf("warnings %v", warnings)
	}
}

// TestParseDaemonMisspelledRequired: a misspelled interface keyword is
// reported on its line as the missing required one, not only as an
// unknown keyword that --check would pass.
func TestParseDaemonMisspelledRequired(t *testing.T) {
	_, warnings, err := parseD(t, "# site\ninterfce eth0\n")
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 || e.Key != "interface" {
		t.Fatalf("err %v, want interface required on line 2", err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].Msg, `did you mean "interface"?`) {
		t.Fatalf("warnings %v", warnings)
	}
}

// CLASSIC-8.2 and the other warnings.
func TestParseDaemonWarnings(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"unknown keyword", "interface eth0\nknock-harder yes\n", []string{`doormand.cf:2: "knock-harder": unknown keyword, ignored`}},
		{"misspelled keyword", "interface eth0\nwiatfor 5\n", []string{`doormand.cf:2: "wiatfor": unknown keyword, ignored; did you mean "waitfor"?`}},
		{"logfile stderr", "interface eth0\nlogfile -\n", nil},
		{"repeated keyword", "interface eth0\nport 1\nPort 2\n", []string{`doormand.cf:3: Port: also set on line 2; this later value wins`}},
		{"fail-limit", "interface eth0\nfail-limit 5\n", []string{`doormand.cf:2: fail-limit "5": parsed but not acted on, as in Doorman 0.81`}},
		{"fail-delay", "interface eth0\nfail-delay 30\n", []string{`doormand.cf:2: fail-delay "30": parsed but not acted on, as in Doorman 0.81`}},
		{"scripts with nftables", "interface eth0\nfirewall nftables\nfirewall-add /a\nfirewall-del /d\n",
			[]string{`doormand.cf:3: firewall "nftables": firewall-add and firewall-del are ignored unless firewall is script`}},
		{"protect with scripts", "interface eth0\nfirewall-add /a\nfirewall-del /d\nprotect 22\n",
			[]string{`doormand.cf:4: protect: ignored with firewall script: the scripts and the administrator's ruleset decide what is closed`}},
		{"link header with network capture", "interface eth0\ncapture network\nlink-header-length 18\n",
			[]string{`doormand.cf:3: link-header-length: ignored: capture is network (line 2), not raw`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, warnings, err := parseD(t, tc.text)
			if err != nil || d == nil {
				t.Fatalf("error: %v", err)
			}
			var got []string
			for _, w := range warnings {
				got = append(got, w.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
	d, _, _ := parseD(t, "interface eth0\nport 1\nport 2\n")
	if d.Port != 2 {
		t.Errorf("later value should win, got port %d", d.Port)
	}
}

func TestParseDaemonLineTooLong(t *testing.T) {
	_, _, err := parseD(t, "interface eth0\nlogfile /"+strings.Repeat("a", maxLineLen+10)+"\n")
	if err == nil || !strings.Contains(err.Error(), "doormand.cf:2: cannot read") {
		t.Errorf("got %v", err)
	}
}

func TestLevels(t *testing.T) {
	order := []string{"DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRIT", "ALERT", "EMERG"}
	prev := slog.Level(-100)
	for _, name := range order {
		l, ok := ParseLevel(strings.ToLower(name))
		if !ok || l <= prev {
			t.Errorf("%s: %v %v, not above %v", name, l, ok, prev)
		}
		if got := LevelName(l); got != name {
			t.Errorf("LevelName(%v) = %s, want %s", l, got, name)
		}
		prev = l
	}
	if _, ok := ParseLevel("TRACE"); ok {
		t.Error("TRACE accepted")
	}
	if LevelName(slog.LevelInfo+1) != "INFO" || LevelName(slog.LevelDebug-4) != "DEBUG" {
		t.Error("in-between levels")
	}
}

// TestLoadDaemonRelativePaths: relative paths are taken from the
// configuration file's directory, with a warning naming the line.
func TestLoadDaemonRelativePaths(t *testing.T) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "doormand.cf")
	os.WriteFile(cf, []byte("interface eth0\nguestlist guests\nhash-archive state/replay\nfirewall-add ./add\nfirewall-del /abs/del\nprivate-key keys/doormand.key\n"), 0o600)
	d, warns, err := LoadDaemon(cf, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.GuestList != filepath.Join(dir, "guests") || d.HashArchive != filepath.Join(dir, "state/replay") ||
		d.FirewallAdd != filepath.Join(dir, "add") || d.FirewallDel != "/abs/del" || d.PrivateKey != filepath.Join(dir, "keys/doormand.key") {
		t.Fatalf("paths %q %q %q %q %q", d.GuestList, d.HashArchive, d.FirewallAdd, d.FirewallDel, d.PrivateKey)
	}
	n := 0
	for _, w := range warns {
		if strings.Contains(w.String(), "relative path") {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("%d relative-path warnings, want 4: %v", n, warns)
	}
}

// TestHashArchiveSizeMinimum: as 0.81 did, a size below 1000 is raised to
// 1000, with a warning.
func TestHashArchiveSizeMinimum(t *testing.T) {
	d, warns, err := ParseDaemon("doormand.cf", strings.NewReader("interface eth0\nhash-archive-size 500\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.HashArchiveSize != MinHashArchiveSize || len(warns) != 1 || !strings.Contains(warns[0].String(), "1000 used") {
		t.Fatalf("size %d, warnings %v", d.HashArchiveSize, warns)
	}
}

// Every setting is either restart-only or reloadable, named by its
// keyword: the tags of Restart and Reloadable together are exactly the
// keywords, each once (what a reload reports as needing a restart rests
// on them).
func TestSettingsParts(t *testing.T) {
	seen := map[string]string{}
	for _, part := range []reflect.Type{reflect.TypeFor[Restart](), reflect.TypeFor[Reloadable]()} {
		for f := range part.Fields() {
			kw := f.Tag.Get("keyword")
			if _, ok := keywords()[kw]; !ok {
				t.Errorf("%s.%s: keyword tag %q is no keyword", part.Name(), f.Name, kw)
			}
			if other, dup := seen[kw]; dup {
				t.Errorf("keyword %s in both %s and %s", kw, other, part.Name())
			}
			seen[kw] = part.Name()
		}
	}
	for kw := range keywords() {
		if seen[kw] == "" {
			t.Errorf("keyword %s is in neither Restart nor Reloadable", kw)
		}
	}
	// The brief's split: what SIGHUP applies.
	for _, kw := range []string{"waitfor", "connection-delay-1", "connection-delay-2", "guestlist", "loglevel",
		"stats-interval", "max-doors", "modern-window", "modern-rate", "modern-burst"} {
		if seen[kw] != "Reloadable" {
			t.Errorf("%s is %s, want Reloadable", kw, seen[kw])
		}
	}
}

func TestRestartChanged(t *testing.T) {
	a, b := DefaultDaemon().Restart, DefaultDaemon().Restart
	if c := a.Changed(b); len(c) != 0 {
		t.Errorf("defaults differ from themselves: %v", c)
	}
	a.Protect, b.Protect = []uint16{22, 80}, []uint16{22, 80}
	if c := a.Changed(b); len(c) != 0 {
		t.Errorf("equal protect lists differ: %v", c)
	}
	b.Protect = []uint16{22}
	b.Interface, b.Capture = "eth1", capture.ModeSocket
	if c := a.Changed(b); !reflect.DeepEqual(c, []string{"interface", "capture", "protect"}) {
		t.Errorf("Changed = %v, want interface capture protect", c)
	}
}
