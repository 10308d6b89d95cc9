package knocker

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func writeSecretFile(t *testing.T, body string, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadSecretFile(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       string // "" for an error
		err        error
	}{
		{"with newline", "s3cretKnock\n", "s3cretKnock", nil},
		{"without newline", "s3cretKnock", "s3cretKnock", nil},
		{"crlf", "s3cretKnock\r\n", "s3cretKnock", nil},
		{"punctuation", `!@$%^&*()_-+=|\[]{};:'"<>,?/x` + "\n", `!@$%^&*()_-+=|\[]{};:'"<>,?/x`, nil},
		{"empty file", "", "", ErrNoSecret},
		{"empty line", "\n", "", ErrNoSecret},
		{"second line", "s3cretKnock\nmore\n", "", ErrSecretFormat},
		{"trailing blank line", "s3cretKnock\n\n", "", ErrSecretFormat},
		{"trailing space", "s3cretKnock \n", "", ErrSecretFormat},
		{"tab inside", "s3cret\tKnock\n", "", ErrSecretFormat},
		{"too long", strings.Repeat("a", MaxSecretLine+1), "", ErrSecretFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeSecretFile(t, tc.body, 0o600)
			s, err := ReadSecretFile(p)
			if tc.err == nil {
				if err != nil || string(s) != tc.want {
					t.Fatalf("ReadSecretFile = %q, %v; want %q", s, err, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.err) || !strings.HasPrefix(err.Error(), p+": ") {
				t.Fatalf("err = %v; want %v naming %s", err, tc.err, p)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
	long := writeSecretFile(t, strings.Repeat("a", MaxSecretLine)+"\n", 0o600)
	if s, err := ReadSecretFile(long); err != nil || len(s) != MaxSecretLine {
		t.Errorf("a secret of MaxSecretLine bytes: %d bytes, %v", len(s), err)
	}
}

// TestReadSecretFilePerm applies CLASSIC-10.3's rule to a secret file
// (CLASSIC-11.5/3).
func TestReadSecretFilePerm(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions on Windows")
	}
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o644, 0o620, 0o602, 0o660, 0o700 | 0o004} {
		p := writeSecretFile(t, "s3cretKnock\n", mode)
		_, err := ReadSecretFile(p)
		if !errors.Is(err, ErrConfigPerm) || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("mode %04o: err = %v, want ErrConfigPerm naming chmod 600 %s", mode, err, p)
		}
	}
	for _, mode := range []fs.FileMode{0o600, 0o400} {
		p := writeSecretFile(t, "s3cretKnock\n", mode)
		if s, err := ReadSecretFile(p); err != nil || string(s) != "s3cretKnock" {
			t.Errorf("mode %04o: %q, %v", mode, s, err)
		}
	}
	dir := t.TempDir()
	if _, err := ReadSecretFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := ReadSecretFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: err = %v", err)
	}
}

func TestReadSecretLine(t *testing.T) {
	for _, tc := range []struct {
		in, want, rest string
		err            error
	}{
		{"s3cretKnock\nfor the program", "s3cretKnock", "for the program", nil},
		{"s3cretKnock\r\n", "s3cretKnock", "", nil},
		{"s3cretKnock", "s3cretKnock", "", nil},
		{"\nrest", "", "rest", ErrNoSecret},
		{"\r\n", "", "", ErrNoSecret},
		{"", "", "", io.ErrUnexpectedEOF},
		{"two words\n", "", "", ErrSecretFormat},
		{strings.Repeat("a", MaxSecretLine+2) + "\n", "", "\n", ErrSecretFormat},
	} {
		r := strings.NewReader(tc.in)
		s, err := ReadSecretLine(r)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%.40q: err = %v, want %v", tc.in, err, tc.err)
			}
		} else if err != nil || string(s) != tc.want {
			t.Errorf("%.40q: %q, %v; want %q", tc.in, s, err, tc.want)
		}
		if rest, _ := io.ReadAll(r); string(rest) != tc.rest {
			t.Errorf("%.40q: left %q unread, want %q", tc.in, rest, tc.rest)
		}
	}
}

// FuzzReadSecretLine: whatever the input, a secret read is a valid guest
// list token, is the input's first line, and nothing past that line's end
// was consumed.
func FuzzReadSecretLine(f *testing.F) {
	for _, s := range []string{"s3cretKnock\n", "a\r\nb", "", "\n", "x y\n", "ab\r", "é\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := strings.NewReader(in)
		s, err := ReadSecretLine(r)
		if err != nil {
			return
		}
		line, _, _ := strings.Cut(in, "\n")
		if len(s) == 0 || string(s) != strings.TrimSuffix(line, "\r") {
			t.Fatalf("%q: secret %q is not the first line", in, s)
		}
		consumed := len(in) - r.Len()
		if want := min(len(line)+1, len(in)); consumed != want {
			t.Fatalf("%q: consumed %d bytes, want %d", in, consumed, want)
		}
	})
}
