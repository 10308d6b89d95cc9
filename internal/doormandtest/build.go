package doormandtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// BinEnv names the environment variable that points at a directory with
// prebuilt doormand and knock binaries (make test sets it to bin/).
const BinEnv = "DOORMAN_BIN"

// Build builds doormand and knock from the module holding the working
// directory into dir, without cgo as the release builds are.
func Build(ctx context.Context, dir string) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return errors.New("not inside the doorman module: run from its tree or set " + BinEnv)
	}
	for _, c := range []string{"doormand", "knock"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, c), "./cmd/"+c)
		cmd.Dir = filepath.Dir(mod)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", c, err, out)
		}
	}
	return nil
}

// built is the process's own build of the binaries, shared by its tests.
var built struct {
	sync.Mutex
	dir string
}

// Binaries returns a directory holding doormand and knock: $DOORMAN_BIN
// when set (make test builds them once for every package), else a build
// of this process's, made on first use and shared by its tests. A package
// whose tests use it calls RemoveBuilt from TestMain after m.Run.
func Binaries(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv(BinEnv); dir != "" {
		for _, c := range []string{"doormand", "knock"} {
			if _, err := os.Stat(filepath.Join(dir, c)); err != nil {
				t.Fatalf("%s=%s: %v", BinEnv, dir, err)
			}
		}
		return dir
	}
	built.Lock()
	defer built.Unlock()
	if built.dir != "" {
		return built.dir
	}
	dir, err := os.MkdirTemp("", "doormandtest-bin-")
	if err != nil {
		t.Fatal(err)
	}
	if err := Build(context.Background(), dir); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	built.dir = dir
	return dir
}

// RemoveBuilt deletes the binaries Binaries built, if it built any.
func RemoveBuilt() {
	built.Lock()
	defer built.Unlock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
		built.dir = ""
	}
}
