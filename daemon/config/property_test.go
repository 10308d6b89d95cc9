package config

import (
	"crypto/sha256"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/doorman-project/doorman/protocol"
	"pgregory.net/rapid"
)

const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + protocol.GroupAlphabet

func genName(maxLen int) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		n := rapid.IntRange(1, maxLen).Draw(t, "len")
		b := make([]byte, n)
		for i := range b {
			b[i] = nameChars[rapid.IntRange(0, len(nameChars)-1).Draw(t, "c")]
		}
		return string(b)
	})
}

func genPrefix() *rapid.Generator[netip.Prefix] {
	return rapid.Custom(func(t *rapid.T) netip.Prefix {
		var a netip.Addr
		if rapid.Bool().Draw(t, "v6") {
			var b [16]byte
			copy(b[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "b6"))
			a = netip.AddrFrom16(b)
			if a.Is4In6() {
				a = a.Unmap()
			}
		} else {
			var b [4]byte
			copy(b[:], rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "b4"))
			a = netip.AddrFrom4(b)
		}
		return netip.PrefixFrom(a, rapid.IntRange(0, a.BitLen()).Draw(t, "bits")).Masked()
	})
}

// genGuest draws a guest as ParseGuestList would return it.
func genGuest(t *rapid.T, name string) protocol.Guest {
	ports := rapid.SliceOfNDistinct(rapid.Uint16Range(1, 65535), 1, 6, rapid.ID).Draw(t, "ports")
	slices.Sort(ports)
	nets := rapid.SliceOfNDistinct(genPrefix(), 1, 6, rapid.ID).Draw(t, "nets")
	g := protocol.Guest{
		Name:  name,
		Ports: ports,
		Nets:  nets,
	}
	if rapid.Bool().Draw(t, "modern") {
		// Hashing in the (distinct) name keeps keys distinct even when
		// rapid draws the same bytes for two guests.
		seed := rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "key seed")
		priv := protocol.PrivateKey(sha256.Sum256(append([]byte(name+"\x00"), seed...)))
		g.Key = priv.Public()
	} else {
		g.Secret = protocol.Secret(genName(MaxSecretLen).Draw(t, "secret"))
	}
	for _, n := range nets {
		if n.IsSingleIP() && rapid.Bool().Draw(t, "bare") {
			g.Sources = append(g.Sources, n.Addr().String())
		} else {
			g.Sources = append(g.Sources, n.String())
		}
	}
	return g
}

// render writes guests as a guest list, splitting records over
// continuation lines and sprinkling comments and blank lines.
func render(t *rapid.T, guests []protocol.Guest) string {
	var b strings.Builder
	sep := func() string { return rapid.SampledFrom([]string{" ", "\t", "  \t "}).Draw(t, "sep") }
	for _, g := range guests {
		if rapid.Bool().Draw(t, "comment") {
			b.WriteString("# " + g.Name + " follows\n\n")
		}
		fields := []string{string(g.Secret)}
		if g.IsModern() {
			fields[0] = KeyPrefix + g.Key.String()
		}
		for _, p := range rapid.Permutation(g.Ports).Draw(t, "perm") {
			fields = append(fields, strconv.Itoa(int(p)))
		}
		fields = append(fields, g.Sources...)
		b.WriteString(g.Name)
		for _, f := range fields {
			if rapid.IntRange(0, 3).Draw(t, "newline") == 0 {
				b.WriteString("\n")
			}
			b.WriteString(sep() + f)
		}
		if rapid.Bool().Draw(t, "trailing") {
			b.WriteString(sep() + "# trailing")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// CLASSIC-9.1 to 9.3, MODERN-12.20: any list of valid classic and modern
// guests, written out, reads back the same.
func TestPropertyGuestListRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		names := rapid.SliceOfNDistinct(genName(protocol.MaxGroupLen), 0, 5, rapid.ID).Draw(t, "names")
		var want []protocol.Guest
		for _, n := range names {
			want = append(want, genGuest(t, n))
		}
		text := render(t, want)
		got, _, err := ParseGuestList("prop", strings.NewReader(text), StaticResolver{})
		if err != nil {
			t.Fatalf("parse error: %v\n%s", err, text)
		}
		if len(want) == 0 {
			want = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %+v\nwant %+v\n%s", got, want, text)
		}
	})
}
