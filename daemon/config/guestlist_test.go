package config

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/doorman-project/doorman/protocol"
)

var testResolver = StaticResolver{
	Ports: map[string]uint16{"knockme": 4000, "www": 80},
	Hosts: map[string][]netip.Addr{
		"gw.example.net":  {netip.MustParseAddr("198.18.5.1"), netip.MustParseAddr("2001:db8::5")},
		"v4.example.net":  {netip.MustParseAddr("198.18.6.9")},
		"v4.example.net.": {netip.MustParseAddr("198.18.6.9")},
		"mapped.example":  {netip.MustParseAddr("::ffff:198.18.7.7")},
		"www.example":     {netip.MustParseAddr("198.18.8.8")},
	},
}

func parseG(t *testing.T, text string) ([]protocol.Guest, []Warning, error) {
	t.Helper()
	return ParseGuestList("guests", strings.NewReader(text), testResolver)
}

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

// CLASSIC-9.1, CLASSIC-9.2: the 0.81 example guest list loads.
func TestParseGuestListExample081(t *testing.T) {
	f, err := os.Open("testdata/dd_guestlist")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	guests, warnings, err := ParseGuestList("dd_guestlist", f, StaticResolver{})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	want := []protocol.Guest{
		{Name: "alice", Secret: protocol.Secret("s3cretKnock"), Ports: []uint16{22, 2222},
			Nets: pfx("198.18.0.0/24"), Sources: []string{"198.18.0.0/24"}},
		{Name: "bob", Secret: protocol.Secret("b0b!pass"), Ports: []uint16{22, 80},
			Nets: pfx("198.18.1.7/32", "198.18.2.0/23"), Sources: []string{"198.18.1.7", "198.18.2.0/23"}},
	}
	if !reflect.DeepEqual(guests, want) {
		t.Errorf("got  %+v\nwant %+v", guests, want)
	}
}

// CLASSIC-9.1, CLASSIC-9.2, CLASSIC-9.3: accepted forms.
func TestParseGuestListValid(t *testing.T) {
	tests := []struct {
		name, text string
		ports      []uint16
		nets       []netip.Prefix
		sources    []string
		warnings   []string
	}{
		{"ipv6", "g s3cretsecret 22 2001:db8::1 2001:db8:1::/48\n", []uint16{22},
			pfx("2001:db8::1/128", "2001:db8:1::/48"), []string{"2001:db8::1", "2001:db8:1::/48"}, nil},
		{"hostname every address", "g s3cretsecret ssh gw.example.net\n", []uint16{22},
			pfx("198.18.5.1/32", "2001:db8::5/128"), []string{"gw.example.net"}, nil},
		{"hostname with bits", "g s3cretsecret ssh v4.example.net/24\n", []uint16{22},
			pfx("198.18.6.0/24"), []string{"v4.example.net/24"}, nil},
		{"hostname trailing dot", "g s3cretsecret ssh v4.example.net.\n", []uint16{22},
			pfx("198.18.6.9/32"), []string{"v4.example.net."}, nil},
		{"mapped answer", "g s3cretsecret ssh mapped.example\n", []uint16{22}, pfx("198.18.7.7/32"), []string{"mapped.example"}, nil},
		{"mapped literal", "g s3cretsecret ssh ::ffff:198.18.9.0/120\n", []uint16{22}, pfx("198.18.9.0/24"), []string{"::ffff:198.18.9.0/120"}, nil},
		{"service names", "g s3cretsecret https knockme HTTP 198.18.0.1\n", []uint16{80, 443, 4000}, pfx("198.18.0.1/32"), []string{"198.18.0.1"}, nil},
		{"leading zero port", "g s3cretsecret 02222 198.18.0.1\n", []uint16{2222}, pfx("198.18.0.1/32"), []string{"198.18.0.1"}, nil},
		{"ports and addresses interleaved", "g s3cretsecret 22 198.18.0.1 80 198.18.0.2\n", []uint16{22, 80},
			pfx("198.18.0.1/32", "198.18.0.2/32"), []string{"198.18.0.1", "198.18.0.2"}, nil},
		{"continuations and comments", "# head\n\ng   # group only\n\ts3cretsecret\n  22\n\n   # just a comment\n\t198.18.0.1 # c\n", []uint16{22},
			pfx("198.18.0.1/32"), []string{"198.18.0.1"}, nil},
		{"crlf", "g s3cretsecret 22\r\n  198.18.0.1\r\n", []uint16{22}, pfx("198.18.0.1/32"), []string{"198.18.0.1"}, nil},
		{"duplicate address kept once", "g s3cretsecret 22 198.18.0.1 198.18.0.1/32\n", []uint16{22},
			pfx("198.18.0.1/32"), []string{"198.18.0.1", "198.18.0.1/32"}, nil},
		{"host bits", "g s3cretsecret 22 198.18.0.7/24\n", []uint16{22}, pfx("198.18.0.0/24"), []string{"198.18.0.7/24"},
			[]string{`guests:1: address "198.18.0.7/24": has bits set beyond the /24 prefix; using 198.18.0.0/24`}},
		{"anywhere", "g s3cretsecret 22 0.0.0.0/0\n", []uint16{22}, pfx("0.0.0.0/0"), []string{"0.0.0.0/0"},
			[]string{`guests:1: address "0.0.0.0/0": matches every address: this guest may knock from anywhere`}},
		{"duplicate port", "g s3cretsecret 22 ssh 198.18.0.1\n", []uint16{22}, pfx("198.18.0.1/32"), []string{"198.18.0.1"},
			[]string{`guests:1: port "ssh": port 22 is listed twice`}},
		{"service after address", "g s3cretsecret 22 198.18.0.1 www\n", []uint16{22, 80}, pfx("198.18.0.1/32"), []string{"198.18.0.1"},
			[]string{`guests:1: port "www": is the service name for port 80 but follows an address; if a host is meant, write its address`}},
		{"short secret", "g pw 22 198.18.0.1\n", []uint16{22}, pfx("198.18.0.1/32"), []string{"198.18.0.1"},
			[]string{`guests:1: secret of group "g": is only 2 characters: one sniffed knock lets anyone guess it offline`}},
		{"long secret", "g " + strings.Repeat("x", 65) + " 22 198.18.0.1\n", []uint16{22}, pfx("198.18.0.1/32"), []string{"198.18.0.1"},
			[]string{`guests:1: secret of group "g": is 65 characters; Doorman 0.81 allows at most 64, so its knock client cannot use it`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			guests, warnings, err := parseG(t, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if len(guests) != 1 {
				t.Fatalf("%d guests", len(guests))
			}
			g := guests[0]
			if g.Name != "g" || !reflect.DeepEqual(g.Ports, tc.ports) || !reflect.DeepEqual(g.Nets, tc.nets) || !reflect.DeepEqual(g.Sources, tc.sources) {
				t.Errorf("got %+v", g)
			}
			var got []string
			for _, w := range warnings {
				got = append(got, w.String())
			}
			if !reflect.DeepEqual(got, tc.warnings) {
				t.Errorf("warnings %q\nwant     %q", got, tc.warnings)
			}
		})
	}
}

// CLASSIC-9.4: every error names file, line and offending text; the list is
// not loaded.
func TestParseGuestListErrors(t *testing.T) {
	long := strings.Repeat("a", 33)
	tests := []struct {
		name, text string
		want       []string
	}{
		{"group too long", long + " s3cretsecret 22 198.18.0.1\n",
			[]string{`guests:1: group "` + long + `": must be 1 to 32 letters, digits or ` + protocol.GroupAlphabet}},
		{"group with dot", "a.b s3cretsecret 22 198.18.0.1\n",
			[]string{`guests:1: group "a.b": must be 1 to 32 letters, digits or ` + protocol.GroupAlphabet}},
		{"group only", "lonely\n", []string{`guests:1: group "lonely": has no secret, ports or addresses`}},
		{"no port", "g s3cretsecret 198.18.0.1\n", []string{`guests:1: group "g": has no port: list at least one port number or service name`}},
		{"no address", "g s3cretsecret 22\n", []string{`guests:1: group "g": has no address: list at least one address or host name`}},
		{"secret bad char", "g sec.ret 22 198.18.0.1\n",
			[]string{`guests:1: secret of group "g": character 4 is not a letter, digit or one of ` + protocol.GroupAlphabet}},
		{"secret too long", "g " + strings.Repeat("s", 256) + " 22 198.18.0.1\n",
			[]string{`guests:1: secret of group "g": is 256 characters; at most 255`}},
		{"port zero", "g s3cretsecret 0 198.18.0.1\n", []string{`guests:1: port "0": must be 1-65535`}},
		{"port too big", "g s3cretsecret 65536 198.18.0.1\n", []string{`guests:1: port "65536": must be 1-65535`}},
		{"v4 bits", "g s3cretsecret 22\n  198.18.0.1/33\n",
			[]string{`guests:2: address "198.18.0.1/33": prefix length /33 is too long for an IPv4 address (at most /32)`}},
		{"v6 bits", "g s3cretsecret 22 2001:db8::/129\n",
			[]string{`guests:1: address "2001:db8::/129": prefix length /129 is too long for an IPv6 address (at most /128)`}},
		{"hostname v4 bits", "g s3cretsecret 22 v4.example.net/64\n",
			[]string{`guests:1: address "v4.example.net/64": resolves to 198.18.6.9: prefix length /64 is too long for an IPv4 address (at most /32)`}},
		{"hostname mixed bits", "g s3cretsecret 22 gw.example.net/24\n",
			[]string{`guests:1: address "gw.example.net/24": gw.example.net resolves to both IPv4 and IPv6 addresses, so /24 is ambiguous; list the prefixes instead`}},
		{"bad bits", "g s3cretsecret 22 198.18.0.1/x\n",
			[]string{`guests:1: address "198.18.0.1/x": the part after '/' must be a prefix length in bits`}},
		{"double slash", "g s3cretsecret 22 198.18.0.1/24/8\n",
			[]string{`guests:1: address "198.18.0.1/24/8": the part after '/' must be a prefix length in bits`}},
		{"bad ipv4", "g s3cretsecret 22 198.18.0.256\n", []string{`guests:1: address "198.18.0.256": not a valid IPv4 address`}},
		{"short ipv4", "g s3cretsecret 22 198.18.1\n", []string{`guests:1: address "198.18.1": not a valid IPv4 address`}},
		{"bad ipv6", "g s3cretsecret 22 2001:db8:::1\n", []string{`guests:1: address "2001:db8:::1": not a valid IPv6 address`}},
		{"zone", "g s3cretsecret 22 fe80::1%eth0\n", []string{`guests:1: address "fe80::1%eth0": must not have a zone (%...)`}},
		{"mapped short bits", "g s3cretsecret 22 ::ffff:198.18.0.1/64\n",
			[]string{`guests:1: address "::ffff:198.18.0.1/64": an IPv4-mapped address needs a prefix length of at least 96`}},
		{"junk", "g s3cretsecret 22 s3cr3t!\n", []string{`guests:1: address "s3cr3t!": not a port number, service name, IP address or host name`}},
		{"bad label", "g s3cretsecret 22 -gw.example\n", []string{`guests:1: address "-gw.example": not a port number, service name, IP address or host name`}},
		{"unresolvable", "g s3cretsecret 22\n  nosuch.example\n",
			[]string{`guests:2: host "nosuch.example": cannot resolve: "nosuch.example": unknown host`}},
		{"continuation first", "  s3cretsecret 22 198.18.0.1\n",
			[]string{`guests:1: "s3cretsecret": continuation line (starts with whitespace) before any record; a group name starts in column 1`}},
		{"duplicate group", "g s3cretsecret 22 198.18.0.1\nh s3cretsecret 22 198.18.0.1\n\ng other-secret 80 198.18.0.2\n",
			[]string{`guests:4: group "g": already defined on line 1`}},
		{"all errors at once", "g s3cretsecret 70000 198.18.0.1\nh s3cretsecret 22 198.18.0.1/40\ni bad.secret 22 198.18.0.1\n", []string{
			`guests:1: port "70000": must be 1-65535`,
			`guests:2: address "198.18.0.1/40": prefix length /40 is too long for an IPv4 address (at most /32)`,
			`guests:3: secret of group "i": character 4 is not a letter, digit or one of ` + protocol.GroupAlphabet}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			guests, _, err := parseG(t, tc.text)
			if err == nil {
				t.Fatalf("no error, guests %+v", guests)
			}
			if guests != nil {
				t.Error("guests returned with an error")
			}
			var got []string
			for _, e := range joined(t, err) {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// An error about a secret must never print the secret.
func TestParseGuestListErrorsHideSecret(t *testing.T) {
	for _, secret := range []string{"hunter2.x", "pass word", strings.Repeat("Z", 300)} {
		_, warnings, err := parseG(t, "g "+secret+" 22 198.18.0.1\n")
		if err == nil {
			t.Fatalf("%q accepted", secret)
		}
		first := strings.Fields(secret)[0]
		if strings.Contains(err.Error(), first) {
			t.Errorf("error shows the secret: %v", err)
		}
		for _, w := range warnings {
			if strings.Contains(w.String(), first) {
				t.Errorf("warning shows the secret: %v", w)
			}
		}
	}
}

func TestParseGuestListEmpty(t *testing.T) {
	for _, text := range []string{"", "# only comments\n\n   \n"} {
		guests, warnings, err := parseG(t, text)
		if err != nil || len(guests) != 0 {
			t.Fatalf("got %v %v", guests, err)
		}
		if len(warnings) != 1 || warnings[0].String() != "guests: no guests: every knock will be refused" {
			t.Errorf("warnings %v", warnings)
		}
	}
}

func TestParseGuestListNilResolver(t *testing.T) {
	guests, _, err := ParseGuestList("g", strings.NewReader("g s3cretsecret ssh 198.18.0.1\n"), nil)
	if err != nil || len(guests) != 1 || guests[0].Ports[0] != 22 {
		t.Fatalf("got %+v, %v", guests, err)
	}
}

// TestNetResolverPorts: the resolver knows the common services whether or
// not /etc/services exists (it falls back on protocol.WellKnownPort).
func TestNetResolverPorts(t *testing.T) {
	want := map[string]uint16{"ssh": 22, "telnet": 23, "ftp": 21, "smtp": 25, "http": 80, "https": 443,
		"pop3": 110, "imap": 143, "imaps": 993, "pop3s": 995, "submission": 587, "domain": 53, "rsync": 873,
		"mysql": 3306, "postgresql": 5432, "rdp": 3389, "ms-wbt-server": 3389, "vnc": 5900, "SSH": 22}
	for name, port := range want {
		if p, err := (NetResolver{}).LookupPort(name); err != nil || p != port {
			t.Errorf("NetResolver %s: %d %v, want %d", name, p, err, port)
		}
	}
	if _, err := (NetResolver{}).LookupPort("198.18.0.1"); err == nil {
		t.Error("an address is not a service")
	}
}
