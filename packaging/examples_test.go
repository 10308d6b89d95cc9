// Package packaging holds what installs doorman (make install, the Debian
// package) and tests that what it ships agrees with the code: the example
// configurations parse with the real parsers, their commented values are the
// defaults, and the manual pages document every keyword.
package packaging

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/knocker"
)

// A line "#keyword value" in an example shows a setting; "# text" is prose.
var setting = regexp.MustCompile(`^#([A-Za-z][A-Za-z0-9_-]*)[ \t]+(\S.*)$`)

// uncomment returns text with every setting line's "#" removed, and with
// it that of continuation lines ("#" and a tab) for the guest list.
func uncomment(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if setting.MatchString(l) || strings.HasPrefix(l, "#\t") {
			lines[i] = l[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// daemonKeywords returns every keyword of doormand.cf, read from the
// keyword table in daemon/config (the function keywords), so that a keyword
// added there fails this test until the example and the manual have it.
func daemonKeywords(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../daemon/config/daemon.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kws []string
	ast.Inspect(f, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "keywords" {
			return true
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			arr, ok := lit.Type.(*ast.ArrayType)
			if !ok {
				return true
			}
			if id, ok := arr.Elt.(*ast.Ident); !ok || id.Name != "keyword" {
				return true
			}
			for _, e := range lit.Elts {
				kw, ok := e.(*ast.CompositeLit)
				if !ok || len(kw.Elts) == 0 {
					continue
				}
				if s, ok := kw.Elts[0].(*ast.BasicLit); ok && s.Kind == token.STRING {
					name, err := strconv.Unquote(s.Value)
					if err != nil {
						t.Fatal(err)
					}
					kws = append(kws, name)
				}
			}
			return false
		})
		return false
	})
	if len(kws) < 25 {
		t.Fatalf("found %d keywords in daemon/config/daemon.go's keyword table (%q): the table's shape changed; update daemonKeywords", len(kws), kws)
	}
	return kws
}

// exampleOnly are the doormand.cf keywords without a default value: the
// example shows a value of the right form instead.
var exampleOnly = []string{"interface", "link-header-length", "protect", "firewall-add", "firewall-del", "logfile"}

// notActedOn are the 0.81 keywords doormand reads and warns about.
var notActedOn = []string{"fail-limit", "fail-delay"}

func parseDaemon(t *testing.T, text string) (*config.Daemon, []config.Warning) {
	t.Helper()
	d, warns, err := config.ParseDaemon("doormand.cf", strings.NewReader(text))
	if err != nil {
		t.Fatalf("%v\n--- in:\n%s", err, text)
	}
	return d, warns
}

// TestDoormandCfExample checks the shipped doormand.cf: it has every
// keyword, the value of each commented keyword is its default, every one of
// them parses, and as shipped it starts nothing (interface is required).
func TestDoormandCfExample(t *testing.T) {
	shipped := readFile(t, "examples/doormand.cf")

	if _, _, err := config.ParseDaemon("doormand.cf", strings.NewReader(shipped)); err == nil || !strings.Contains(err.Error(), "interface") {
		t.Errorf("the shipped doormand.cf parses with error %v; want only that interface is required, so an unconfigured doormand does not start", err)
	}
	base := shipped + "interface eth0\n"
	want, warns := parseDaemon(t, base)
	if len(warns) > 0 {
		t.Errorf("the shipped doormand.cf warns: %v", warns)
	}

	seen := map[string]bool{}
	for i, l := range strings.Split(shipped, "\n") {
		if f := strings.Fields(l); len(f) == 2 && !strings.HasPrefix(l, "#") {
			seen[f[0]] = true // an active setting
			continue
		}
		m := setting.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		kw := m[1]
		seen[kw] = true
		if slices.Contains(exampleOnly, kw) {
			continue
		}
		got, warns := parseDaemon(t, base+m[1]+" "+m[2]+"\n")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("doormand.cf:%d: %q is not the default: setting it changes the configuration\n got %+v\nwant %+v", i+1, l, got, want)
		}
		if len(warns) > 0 && !slices.Contains(notActedOn, kw) {
			t.Errorf("doormand.cf:%d: %q warns: %v", i+1, l, warns)
		}
	}
	for _, kw := range daemonKeywords(t) {
		if !seen[kw] {
			t.Errorf("the shipped doormand.cf does not show keyword %q", kw)
		}
	}
	for kw := range seen {
		if !slices.Contains(daemonKeywords(t), kw) {
			t.Errorf("the shipped doormand.cf shows %q, which is not a doormand.cf keyword", kw)
		}
	}

	// Every example value parses, all of them at once too.
	all, _ := parseDaemon(t, uncomment(shipped))
	if all.Interface != "eth0" || len(all.Protect) != 2 || all.FirewallAdd == "" {
		t.Errorf("uncommented, doormand.cf gives %+v; want every example applied", all)
	}
}

// TestGuestListExample checks the shipped guest list: as shipped it lets no
// one in, and every commented record is valid, classic and modern.
func TestGuestListExample(t *testing.T) {
	shipped := readFile(t, "examples/guestlist")
	res := config.StaticResolver{Ports: map[string]uint16{"ssh": 22, "rsync": 873}}

	guests, _, err := config.ParseGuestList("guestlist", strings.NewReader(shipped), res)
	if err != nil || len(guests) != 0 {
		t.Errorf("the shipped guest list gives %d guests, error %v; want none: no example secret may let anyone in", len(guests), err)
	}

	guests, warns, err := config.ParseGuestList("guestlist", strings.NewReader(uncomment(shipped)), res)
	if err != nil {
		t.Fatalf("uncommented, the guest list does not load: %v", err)
	}
	if len(warns) > 0 {
		t.Errorf("uncommented, the guest list warns: %v", warns)
	}
	var classic, modern int
	for _, g := range guests {
		if g.IsModern() {
			modern++
		} else {
			classic++
		}
		if g.Name == "backup" && len(g.Nets) != 2 {
			t.Errorf("guest backup has networks %v; want the two on its continuation lines", g.Nets)
		}
	}
	if classic != 2 || modern != 1 {
		t.Errorf("uncommented, the guest list has %d classic and %d modern guests; want 2 and 1", classic, modern)
	}
}

// TestKnockcfExample checks the shipped .knockcf: as shipped it sets
// nothing, and uncommented every record parses without a warning.
func TestKnockcfExample(t *testing.T) {
	shipped := readFile(t, "examples/knockcf")

	c, err := knocker.ParseConfig("knockcf", strings.NewReader(shipped))
	if err != nil || c.Group != "" || len(c.Secret) != 0 || c.Modern.Servers != nil || len(c.Warnings) > 0 {
		t.Errorf("the shipped .knockcf gives %+v, error %v; want nothing set", c, err)
	}
	c, err = knocker.ParseConfig("knockcf", strings.NewReader(uncomment(shipped)))
	if err != nil {
		t.Fatalf("uncommented, the .knockcf does not parse: %v", err)
	}
	if len(c.Warnings) > 0 {
		t.Errorf("uncommented, the .knockcf warns: %v", c.Warnings)
	}
	if c.Group != "alice" || len(c.Secret) == 0 || c.KnockPort != 1001 || c.Run == "" || len(c.Modern.Servers) != 1 || c.Modern.PrivateKeyFile == "" {
		t.Errorf("uncommented, the .knockcf gives %+v; want every record applied", c)
	}
}
