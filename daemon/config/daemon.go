package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/daemon/ratelimit"
	"github.com/doorman-project/doorman/protocol"
)

// Firewall selects how doors are opened. With firewall-add and firewall-del
// set and no firewall keyword it is FirewallScript, as in 0.81 (CLASSIC-8.5).
type Firewall string

// The firewall back ends.
const (
	FirewallNftables Firewall = "nftables" // doorman manages its own nftables table
	FirewallIptables Firewall = "iptables" // doorman's nftables table, accepted by its own iptables chain
	FirewallScript   Firewall = "script"   // 0.81 firewall-add / firewall-del scripts
)

// Defaults and limits of doormand.cf (CLASSIC-8.4).
const (
	DefaultConfigPath      = "/usr/local/etc/doormand/doormand.cf"
	DefaultPort            = 1001
	DefaultWaitFor         = 10 * time.Second
	DefaultConnDelay1      = 500 * time.Millisecond
	DefaultConnDelay2      = 5 * time.Second
	DefaultGuestList       = "/etc/dd_guestlist"
	DefaultHashArchive     = "/var/lib/doorman/replay"
	DefaultHashArchiveSize = protocol.DefaultReplayCapacity
	MinHashArchiveSize     = protocol.MinReplayCapacity
	MaxHashArchiveSize     = 100_000_000
	DefaultLogFile         = "/var/log/doorman"
	DefaultPidFile         = "/var/run/doorman.pid"
	DefaultFailLimit       = 3
	DefaultFailDelay       = 60 * time.Second
	DefaultNftTable        = firewall.DefaultNFTTable
	DefaultDoorMark        = firewall.DefaultMark
	DefaultStatsInterval   = 300 * time.Second
	DefaultIptablesChain   = firewall.DefaultIPTChain
	DefaultLogGroup        = firewall.DefaultLogGroup
	DefaultMaxDoors        = 10000
	MaxMaxDoors            = 65535
	MaxLinkHeaderLength    = 128

	// Limits of the modern protocol's keywords (MODERN-12.21). The
	// window's bounds are the spec's; the rate limits' upper bounds only
	// catch typos, since a limit that high no longer limits.
	MinModernWindow = time.Second
	MaxModernWindow = time.Hour
	MaxModernRate   = 100_000
	MaxModernBurst  = 100_000

	// maxFileSize bounds what LoadDaemon and LoadGuestList read.
	maxFileSize = 16 << 20
	// maxLineLen bounds one line of either file.
	maxLineLen = 64 << 10
)

// Daemon is the content of doormand.cf, in two parts: what a running
// doormand keeps until it restarts, and what a reload (SIGHUP) changes.
// The zero value is not useful; start from DefaultDaemon or use
// ParseDaemon, which fills in the defaults.
type Daemon struct {
	Restart
	Reloadable
}

// Restart holds the settings a running doormand keeps until it restarts:
// they shape what it set up at start (capture, firewall, replay store,
// files, keys). Each field's tag names its keyword. Two values are
// compared with Changed.
type Restart struct {
	// Interface is the network device knocks arrive on (required).
	Interface string `keyword:"interface"`
	// Port is the UDP port knocks are sent to.
	Port uint16 `keyword:"port"`
	// LinkHeaderLength overrides the link-layer header length for raw
	// capture; -1 means not set (guess from the link type).
	LinkHeaderLength int `keyword:"link-header-length"`
	// FirewallAdd and FirewallDel are the 0.81 scripts, used when Firewall
	// is FirewallScript; empty when not set.
	FirewallAdd string `keyword:"firewall-add"`
	FirewallDel string `keyword:"firewall-del"`
	// HashArchive is the replay archive file. 0.81 required it; here it
	// defaults to DefaultHashArchive.
	HashArchive string `keyword:"hash-archive"`
	// HashArchiveSize is the number of knocks the replay archive holds.
	HashArchiveSize int `keyword:"hash-archive-size"`
	// LogFile is where the daemon logs when not in debug mode: a file,
	// "-" or "stderr" for standard error, or "" (keyword not given) for
	// the default: the journal when systemd started doormand with its
	// standard error connected to the journal, else DefaultLogFile.
	LogFile string `keyword:"logfile"`
	// PidFile is the daemon's pid file.
	PidFile string `keyword:"pidfile"`
	// FailLimit and FailDelay are parsed for 0.81 compatibility and not
	// acted on, as in 0.81.
	FailLimit int           `keyword:"fail-limit"`
	FailDelay time.Duration `keyword:"fail-delay"`
	// Firewall is the door back end. Default: FirewallScript when
	// firewall-add or firewall-del is set (the 0.81 drop-in case), else
	// FirewallNftables.
	Firewall Firewall `keyword:"firewall"`
	// Capture is the capture method. Default: capture.ModeRaw when
	// link-header-length is set, else capture.ModeNetwork.
	Capture capture.Mode `keyword:"capture"`
	// NftTable is the nftables table (family inet) doorman owns.
	NftTable string `keyword:"nft-table"`
	// DoorMark is the packet mark doorman's rules use.
	DoorMark uint32 `keyword:"door-mark"`
	// Protect lists the TCP ports doorman itself keeps closed (sorted,
	// no duplicates); empty means doorman closes nothing and the
	// administrator's own ruleset must.
	Protect []uint16 `keyword:"protect"`
	// IptablesChain is the iptables chain doorman owns.
	IptablesChain string `keyword:"iptables-chain"`
	// LogGroup is the netfilter log group on which the kernel reports the
	// SYNs that claim doors (keyword nft-log-group); one program per network
	// namespace can read a group.
	LogGroup uint16 `keyword:"nft-log-group"`
}

// Reloadable holds the settings a reload (SIGHUP) applies to a running
// doormand; open doors keep what they started with (CLASSIC-6.11). Each
// field's tag names its keyword.
type Reloadable struct {
	// WaitFor is how long a door opened for any source port waits for
	// the first SYN (keyword waitfor, in seconds).
	WaitFor time.Duration `keyword:"waitfor"`
	// ConnDelay1 is how long after the SYN the connection has to become
	// established (connection-delay-1, in microseconds).
	ConnDelay1 time.Duration `keyword:"connection-delay-1"`
	// ConnDelay2 is the interval between checks that the connection still
	// exists (connection-delay-2, in seconds).
	ConnDelay2 time.Duration `keyword:"connection-delay-2"`
	// GuestList is the path of the guest list, read again on reload.
	GuestList string `keyword:"guestlist"`
	// LogLevel is the least severe level logged. 0.81 defaulted to DEBUG;
	// this defaults to INFO. See ParseLevel for the syslog name mapping.
	LogLevel slog.Level `keyword:"loglevel"`
	// StatsInterval is how often counters are logged; 0 turns it off.
	StatsInterval time.Duration `keyword:"stats-interval"`
	// MaxDoors bounds the doors open at once; a knock beyond it is refused
	// before its digest is used.
	MaxDoors int `keyword:"max-doors"`
	// ModernWindow is how far a modern knock's time may be from the
	// doorman's clock, either way (modern-window, in seconds,
	// MODERN-12.14).
	ModernWindow time.Duration `keyword:"modern-window"`
	// ModernRate and ModernBurst bound per source how many modern knocks
	// a second, and how many at once, may cost public-key work
	// (modern-rate, modern-burst, MODERN-12.12).
	ModernRate  int `keyword:"modern-rate"`
	ModernBurst int `keyword:"modern-burst"`
	// PrivateKey is the doorman's private key file for modern knocks
	// (keyword private-key, MODERN-12.21), read again on reload; see
	// LoadPrivateKey.
	PrivateKey string `keyword:"private-key"`
	// Classic is whether classic knocks are accepted (keyword classic on
	// or off): a site that has moved every guest to modern knocks turns
	// it off (MODERN-12.20/3).
	Classic bool `keyword:"classic"`
}

// Changed returns the keywords whose values differ between r and o, in
// the order of the fields: what a reload found changed that takes effect
// only on restart.
func (r Restart) Changed(o Restart) []string {
	a, b := reflect.ValueOf(r), reflect.ValueOf(o)
	var kws []string
	for i := range a.NumField() {
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			kws = append(kws, a.Type().Field(i).Tag.Get("keyword"))
		}
	}
	return kws
}

// DefaultDaemon returns a Daemon with every default set. Interface is empty
// and Firewall is FirewallNftables; ParseDaemon requires the first and
// derives the second.
func DefaultDaemon() *Daemon {
	return &Daemon{
		Restart: Restart{
			Port:             DefaultPort,
			LinkHeaderLength: -1,
			HashArchive:      DefaultHashArchive,
			HashArchiveSize:  DefaultHashArchiveSize,
			PidFile:          DefaultPidFile,
			FailLimit:        DefaultFailLimit,
			FailDelay:        DefaultFailDelay,
			Firewall:         FirewallNftables,
			Capture:          capture.ModeNetwork,
			NftTable:         DefaultNftTable,
			DoorMark:         DefaultDoorMark,
			IptablesChain:    DefaultIptablesChain,
			LogGroup:         DefaultLogGroup,
		},
		Reloadable: Reloadable{
			WaitFor:       DefaultWaitFor,
			ConnDelay1:    DefaultConnDelay1,
			ConnDelay2:    DefaultConnDelay2,
			GuestList:     DefaultGuestList,
			LogLevel:      slog.LevelInfo,
			StatsInterval: DefaultStatsInterval,
			MaxDoors:      DefaultMaxDoors,
			ModernWindow:  protocol.DefaultModernWindow,
			ModernRate:    ratelimit.DefaultRate,
			ModernBurst:   ratelimit.DefaultBurst,
			PrivateKey:    DefaultPrivateKeyPath,
			Classic:       true,
		},
	}
}

// keyword is one doormand.cf keyword: how to apply its value.
type keyword struct {
	name  string // canonical spelling
	apply func(d *Daemon, v string, res Resolver) (warn string, err error)
}

// keywords returns the table of known keywords, indexed by canonical name.
func keywords() map[string]keyword {
	ks := []keyword{
		{"interface", func(d *Daemon, v string, _ Resolver) (string, error) {
			if err := checkInterface(v); err != nil {
				return "", err
			}
			d.Interface = v
			return "", nil
		}},
		{"port", func(d *Daemon, v string, _ Resolver) (string, error) {
			p, err := parsePortNumber(v)
			d.Port = p
			return "", err
		}},
		{"waitfor", durationKW(func(d *Daemon) *time.Duration { return &d.WaitFor }, time.Second, time.Second, time.Hour)},
		{"connection-delay-1", durationKW(func(d *Daemon) *time.Duration { return &d.ConnDelay1 }, time.Microsecond, time.Millisecond, time.Minute)},
		{"connection-delay-2", durationKW(func(d *Daemon) *time.Duration { return &d.ConnDelay2 }, time.Second, 100*time.Millisecond, time.Hour)},
		{"link-header-length", func(d *Daemon, v string, _ Resolver) (string, error) {
			n, err := parseInt(v, 0, MaxLinkHeaderLength)
			d.LinkHeaderLength = n
			return "", err
		}},
		{"guestlist", pathKW(func(d *Daemon) *string { return &d.GuestList })},
		{"firewall-add", pathKW(func(d *Daemon) *string { return &d.FirewallAdd })},
		{"firewall-del", pathKW(func(d *Daemon) *string { return &d.FirewallDel })},
		{"hash-archive", pathKW(func(d *Daemon) *string { return &d.HashArchive })},
		{"hash-archive-size", func(d *Daemon, v string, _ Resolver) (string, error) {
			// 0.81 raised a smaller size to its minimum; so does this.
			n, err := parseInt(v, 1, MaxHashArchiveSize)
			if err != nil {
				return "", err
			}
			if n < MinHashArchiveSize {
				d.HashArchiveSize = MinHashArchiveSize
				return fmt.Sprintf("below the minimum: %d used", MinHashArchiveSize), nil
			}
			d.HashArchiveSize = n
			return "", nil
		}},
		{"logfile", logfileKW},
		{"loglevel", func(d *Daemon, v string, _ Resolver) (string, error) {
			l, ok := ParseLevel(v)
			if !ok {
				return "", errors.New("must be one of DEBUG INFO NOTICE WARNING ERROR CRIT ALERT EMERG")
			}
			d.LogLevel = l
			return "", nil
		}},
		{"pidfile", pathKW(func(d *Daemon) *string { return &d.PidFile })},
		{"fail-limit", func(d *Daemon, v string, _ Resolver) (string, error) {
			n, err := parseInt(v, 0, 1_000_000)
			d.FailLimit = n
			return "parsed but not acted on, as in Doorman 0.81", err
		}},
		{"fail-delay", func(d *Daemon, v string, r Resolver) (string, error) {
			_, err := durationKW(func(d *Daemon) *time.Duration { return &d.FailDelay }, time.Second, 0, 24*time.Hour)(d, v, r)
			return "parsed but not acted on, as in Doorman 0.81", err
		}},
		{"firewall", func(d *Daemon, v string, _ Resolver) (string, error) {
			f := Firewall(strings.ToLower(v))
			switch f {
			case FirewallNftables, FirewallIptables, FirewallScript:
				d.Firewall = f
				return "", nil
			}
			return "", errors.New("must be nftables, iptables or script")
		}},
		{"capture", func(d *Daemon, v string, _ Resolver) (string, error) {
			m, err := capture.ParseMode(v)
			if err != nil {
				return "", errors.New("must be network, raw or socket")
			}
			d.Capture = m
			return "", nil
		}},
		{"nft-table", func(d *Daemon, v string, _ Resolver) (string, error) {
			if !nftName(v) {
				return "", errors.New("must be a letter followed by up to 63 letters, digits, '_' or '-'")
			}
			d.NftTable = v
			return "", nil
		}},
		{"door-mark", func(d *Daemon, v string, _ Resolver) (string, error) {
			m, err := parseMark(v)
			d.DoorMark = m
			return "", err
		}},
		{"protect", func(d *Daemon, v string, r Resolver) (string, error) {
			ports, err := parsePortList(v, r)
			d.Protect = ports
			return "", err
		}},
		{"stats-interval", durationKW(func(d *Daemon) *time.Duration { return &d.StatsInterval }, time.Second, 0, 7*24*time.Hour)},
		{"nft-log-group", func(d *Daemon, v string, _ Resolver) (string, error) {
			n, err := parseInt(v, 1, 65535)
			d.LogGroup = uint16(n)
			return "", err
		}},
		{"max-doors", func(d *Daemon, v string, _ Resolver) (string, error) {
			n, err := parseInt(v, 1, MaxMaxDoors)
			d.MaxDoors = n
			return "", err
		}},
		{"iptables-chain", func(d *Daemon, v string, _ Resolver) (string, error) {
			if err := checkChain(v); err != nil {
				return "", err
			}
			d.IptablesChain = v
			return "", nil
		}},
		// The modern protocol (MODERN-12.21).
		{"private-key", pathKW(func(d *Daemon) *string { return &d.PrivateKey })},
		{"classic", func(d *Daemon, v string, _ Resolver) (string, error) {
			switch strings.ToLower(v) {
			case "on":
				d.Classic = true
			case "off":
				d.Classic = false
			default:
				return "", errors.New("must be on or off")
			}
			return "", nil
		}},
		{"modern-window", durationKW(func(d *Daemon) *time.Duration { return &d.ModernWindow }, time.Second, MinModernWindow, MaxModernWindow)},
		{"modern-rate", intKW(func(d *Daemon) *int { return &d.ModernRate }, 1, MaxModernRate)},
		{"modern-burst", intKW(func(d *Daemon) *int { return &d.ModernBurst }, 1, MaxModernBurst)},
	}
	m := make(map[string]keyword, len(ks))
	for _, k := range ks {
		m[k.name] = k
	}
	return m
}

// normKeyword makes keywords case-insensitive and '-' and '_' equivalent.
func normKeyword(k string) string {
	return strings.ReplaceAll(strings.ToLower(k), "_", "-")
}

// ParseDaemon reads a doormand.cf from r (CLASSIC-8.1 to 8.5). name is used in
// messages. Unknown keywords and repeated keywords (the later wins) are
// warnings; every invalid value is an *Error, all of them returned together
// with errors.Join. On error the returned Daemon is nil.
//
// Service names in protect are looked up with NetResolver.
func ParseDaemon(name string, r io.Reader) (*Daemon, []Warning, error) {
	return parseDaemon(name, r, NetResolver{})
}

func parseDaemon(name string, r io.Reader, res Resolver) (*Daemon, []Warning, error) {
	is := &issues{file: name}
	d := DefaultDaemon()
	kws := keywords()
	seen := map[string]int{}    // canonical keyword -> line it was last set on
	unknown := map[string]int{} // keyword an unknown one looks like -> its line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineLen)
	line := 0
	for sc.Scan() {
		line++
		text := stripConfComment(sc.Text())
		fields := strings.FieldsFunc(text, asciiSpace)
		if len(fields) == 0 {
			continue
		}
		key := fields[0]
		canon := normKeyword(key)
		kw, ok := kws[canon]
		if !ok {
			msg := "unknown keyword, ignored"
			if like := suggestKeyword(canon, kws); like != "" {
				msg += fmt.Sprintf("; did you mean %q?", like)
				unknown[like] = line
			}
			is.warn(line, "", key, msg)
			continue
		}
		if len(fields) == 1 {
			is.errorf(line, key, "", "needs a value", nil)
			continue
		}
		value := strings.Join(fields[1:], " ")
		if len(fields) > 2 && canon != "protect" {
			is.errorf(line, key, value, "takes exactly one value", nil)
			continue
		}
		if prev, ok := seen[canon]; ok {
			is.warn(line, key, "", fmt.Sprintf("also set on line %d; this later value wins", prev))
		}
		seen[canon] = line
		w, err := kw.apply(d, value, res)
		if err != nil {
			is.errorf(line, key, value, err.Error(), errors.Unwrap(err))
			continue
		}
		if w != "" {
			is.warn(line, key, value, w)
		}
	}
	if err := sc.Err(); err != nil {
		is.errorf(line+1, "", "", "cannot read: "+err.Error(), err)
	}
	finishDaemon(d, seen, unknown, is)
	if len(is.errs) > 0 {
		return nil, is.warnings, errors.Join(is.errs...)
	}
	return d, is.warnings, nil
}

// finishDaemon applies the rules that involve more than one keyword.
// unknown maps a keyword to the line of an unknown one that looks like
// it, so that a misspelled required keyword is reported on its line.
func finishDaemon(d *Daemon, seen, unknown map[string]int, is *issues) {
	if _, ok := seen["interface"]; !ok {
		if l, ok := unknown["interface"]; ok {
			is.errorf(l, "interface", "", "is required: name the device knocks arrive on (this line looks like a misspelling of it)", nil)
		} else {
			is.errorf(0, "interface", "", "is required: name the device knocks arrive on", nil)
		}
	}
	addLine, hasAdd := seen["firewall-add"]
	delLine, hasDel := seen["firewall-del"]
	fwLine, hasFW := seen["firewall"]
	if !hasFW && (hasAdd || hasDel) {
		d.Firewall = FirewallScript
	}
	switch {
	case d.Firewall == FirewallScript:
		if !hasAdd {
			is.errorf(fwLine, "firewall-add", "", "is required with firewall script", nil)
		}
		if !hasDel {
			is.errorf(fwLine, "firewall-del", "", "is required with firewall script", nil)
		}
	case hasAdd || hasDel:
		l := addLine
		if !hasAdd {
			l = delLine
		}
		is.warn(l, "firewall", string(d.Firewall), "firewall-add and firewall-del are ignored unless firewall is script")
	}
	if l, ok := seen["protect"]; ok && d.Firewall == FirewallScript {
		is.warn(l, "protect", "", "ignored with firewall script: the scripts and the administrator's ruleset decide what is closed")
	}
	lhlLine, hasLHL := seen["link-header-length"]
	capLine, hasCap := seen["capture"]
	switch {
	case !hasCap && hasLHL:
		d.Capture = capture.ModeRaw
	case hasCap && hasLHL && d.Capture != capture.ModeRaw:
		is.warn(lhlLine, "link-header-length", "", fmt.Sprintf("ignored: capture is %s (line %d), not raw", d.Capture, capLine))
	}
}

// LoadDaemon reads the doormand.cf at path. With checkPerms (doormand
// without -D) the file must pass CheckOwner(KindConfig) before it is read,
// and with firewall script both scripts must pass CheckOwner(KindScript).
func LoadDaemon(path string, checkPerms bool) (*Daemon, []Warning, error) {
	data, err := readChecked(path, KindConfig, checkPerms)
	if err != nil {
		return nil, nil, err
	}
	d, warnings, err := ParseDaemon(path, bytes.NewReader(data))
	if err != nil {
		return nil, warnings, err
	}
	if abs, err := filepath.Abs(path); err == nil {
		d.resolvePaths(filepath.Dir(abs))
	}
	if checkPerms && d.Firewall == FirewallScript {
		var errs []error
		for _, p := range []string{d.FirewallAdd, d.FirewallDel} {
			if err := CheckOwner(p, KindScript); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return nil, warnings, errors.Join(errs...)
		}
	}
	return d, warnings, nil
}

// StampFile returns the modern protocol's stamp store (MODERN-12.17), kept
// next to the replay store: HashArchive + ".stamps".
func (d *Daemon) StampFile() string { return d.HashArchive + ".stamps" }

// resolvePaths makes the relative paths of d absolute, against dir.
func (d *Daemon) resolvePaths(dir string) {
	for _, p := range []*string{&d.GuestList, &d.FirewallAdd, &d.FirewallDel, &d.HashArchive, &d.LogFile, &d.PidFile, &d.PrivateKey} {
		if *p != "" && !filepath.IsAbs(*p) && *p != "-" && *p != "stderr" {
			*p = filepath.Join(dir, *p)
		}
	}
}

// readChecked reads at most maxFileSize bytes of path. With checkPerms it
// checks the name first (so that a FIFO is refused before open could block
// on it) and then the open file, so that what is checked is what is read
// even if the name is swapped in between.
func readChecked(path string, kind FileKind, checkPerms bool) ([]byte, error) {
	var before os.FileInfo
	if checkPerms {
		if err := CheckOwner(path, kind); err != nil {
			return nil, err
		}
		var err error
		if before, err = os.Stat(path); err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, path, err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s %s does not exist: %w", kind, path, os.ErrNotExist)
		}
		return nil, fmt.Errorf("%s %s: %w", kind, path, err)
	}
	defer f.Close()
	if checkPerms {
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, path, err)
		}
		if !os.SameFile(before, fi) {
			return nil, fmt.Errorf("%s %s: replaced while being opened: %w", kind, path, ErrInsecure)
		}
		if err := checkInfo(path, kind, fi); err != nil {
			return nil, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s %s: larger than %d bytes", kind, path, maxFileSize)
	}
	return data, nil
}

// stripConfComment removes a '#' comment that starts the line or follows
// whitespace; a '#' inside a value (foo#bar) is kept.
func stripConfComment(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || asciiSpace(rune(s[i-1]))) {
			return s[:i]
		}
	}
	return s
}

func asciiSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\r' || r == '\v' || r == '\f'
}

func durationKW(field func(*Daemon) *time.Duration, unit, lo, hi time.Duration) func(*Daemon, string, Resolver) (string, error) {
	return func(d *Daemon, v string, _ Resolver) (string, error) {
		t, err := parseDuration(v, unit, lo, hi)
		if err != nil {
			return "", err
		}
		*field(d) = t
		return "", nil
	}
}

// parseDuration reads a whole number of unit (the 0.81 form) or a Go
// duration with its own unit ("1.5s", "250ms"), and checks lo <= t <= hi.
func parseDuration(v string, unit, lo, hi time.Duration) (time.Duration, error) {
	var t time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n > uint64(hi/unit) {
			return 0, fmt.Errorf("must be at most %v", hi)
		}
		t = time.Duration(n) * unit
	} else {
		var err error
		t, err = time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("must be a whole number of %s or a duration such as 1.5s", unitName(unit))
		}
	}
	if t < lo || t > hi {
		if lo == 0 {
			return 0, fmt.Errorf("must be between 0 and %v", hi)
		}
		return 0, fmt.Errorf("must be between %v and %v", lo, hi)
	}
	return t, nil
}

func unitName(u time.Duration) string {
	switch u {
	case time.Microsecond:
		return "microseconds"
	case time.Millisecond:
		return "milliseconds"
	}
	return "seconds"
}

func intKW(field func(*Daemon) *int, lo, hi int) func(*Daemon, string, Resolver) (string, error) {
	return func(d *Daemon, v string, _ Resolver) (string, error) {
		n, err := parseInt(v, lo, hi)
		if err != nil {
			return "", err
		}
		*field(d) = n
		return "", nil
	}
}

func pathKW(field func(*Daemon) *string) func(*Daemon, string, Resolver) (string, error) {
	return func(d *Daemon, v string, _ Resolver) (string, error) {
		if strings.ContainsRune(v, 0) {
			return "", errors.New("must not contain a NUL byte")
		}
		*field(d) = filepath.Clean(v)
		// 0.81 took a relative path from its working directory, which a
		// service manager sets to /; LoadDaemon resolves it against the
		// configuration file's directory instead, and says so.
		if !filepath.IsAbs(v) {
			return "relative path: taken from the configuration file's directory", nil
		}
		return "", nil
	}
}

// logfileKW is logfile: a path, or "-" or "stderr" for standard error,
// which is neither a relative path nor cleaned.
func logfileKW(d *Daemon, v string, res Resolver) (string, error) {
	if v == "-" || v == "stderr" {
		d.LogFile = v
		return "", nil
	}
	return pathKW(func(d *Daemon) *string { return &d.LogFile })(d, v, res)
}

// suggestKeyword returns the keyword closest to the unknown canonical
// keyword key, if one is within two edits (a typo), else "".
func suggestKeyword(key string, kws map[string]keyword) string {
	best, bestD := "", 3
	for name := range kws {
		if d := editDistance(key, name); d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// parseInt reads a decimal integer in [lo, hi].
func parseInt(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("must be a whole number from %d to %d", lo, hi)
	}
	return n, nil
}

// parsePortNumber reads a decimal TCP/UDP port, 1-65535.
func parsePortNumber(v string) (uint16, error) {
	if !allDigits(v) {
		return 0, errors.New("must be a number from 1 to 65535")
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, errors.New("must be 1-65535")
	}
	return uint16(n), nil
}

// parsePortList reads protect's ports: numbers or service names separated
// by commas and/or spaces. The result is sorted with no duplicates.
func parsePortList(v string, res Resolver) ([]uint16, error) {
	var ports []uint16
	var bad []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || asciiSpace(r) }) {
		if allDigits(f) {
			p, err := parsePortNumber(f)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%q (must be 1-65535)", f))
				continue
			}
			ports = append(ports, p)
			continue
		}
		p, err := res.LookupPort(f)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q (unknown service)", f))
			continue
		}
		ports = append(ports, p)
	}
	if len(bad) > 0 {
		return nil, errors.New("bad ports: " + strings.Join(bad, ", "))
	}
	if len(ports) == 0 {
		return nil, errors.New("needs at least one port")
	}
	slices.Sort(ports)
	return slices.Compact(ports), nil
}

// parseMark reads a packet mark: 0x-prefixed hex or decimal, non-zero (a
// zero mark cannot be told apart from an unmarked packet).
func parseMark(v string) (uint32, error) {
	var n uint64
	var err error
	if h, ok := strings.CutPrefix(strings.ToLower(v), "0x"); ok {
		n, err = strconv.ParseUint(h, 16, 32)
	} else {
		n, err = strconv.ParseUint(v, 10, 32)
	}
	if err != nil || n == 0 {
		return 0, errors.New("must be a non-zero 32-bit number, decimal or 0x hex")
	}
	return uint32(n), nil
}

// checkInterface applies Linux's rules for a device name.
func checkInterface(v string) error {
	if len(v) > 15 {
		return errors.New("interface names are at most 15 bytes")
	}
	if v == "." || v == ".." || strings.ContainsAny(v, "/:") {
		return errors.New("not a valid interface name")
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return errors.New("not a valid interface name")
		}
	}
	return nil
}

// nftName reports whether v is a safe nftables table name.
func nftName(v string) bool {
	if len(v) == 0 || len(v) > 64 || !isLetter(v[0]) {
		return false
	}
	for i := 1; i < len(v); i++ {
		c := v[i]
		if !isLetter(c) && !isDigit(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// checkChain rejects iptables chain names that are too long, malformed, or
// a built-in chain doorman would then flush.
func checkChain(v string) error {
	switch strings.ToUpper(v) {
	case "INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING":
		return errors.New("must not be a built-in chain: doorman owns and flushes this chain")
	}
	if v == "" || len(v) > 28 || !isLetter(v[0]) {
		return errors.New("must be a letter followed by up to 27 letters, digits, '_' or '-'")
	}
	for i := 1; i < len(v); i++ {
		c := v[i]
		if !isLetter(c) && !isDigit(c) && c != '_' && c != '-' {
			return errors.New("must be a letter followed by up to 27 letters, digits, '_' or '-'")
		}
	}
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
