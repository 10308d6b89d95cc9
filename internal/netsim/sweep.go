//go:build linux

package netsim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Where runs are recorded and named namespaces live.
const (
	runDir   = "/run"
	netnsDir = "/run/netns"
)

// registerRun creates /run/<prefix>/<runID>.pid holding this process's pid
// and an exclusive flock that lives as long as the returned file. The file
// is locked under a temporary name and renamed into place, so Sweep never
// sees an unlocked record of a live run.
func registerRun(prefix, runID string) (*os.File, string, error) {
	dir := filepath.Join(runDir, prefix)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("netsim: run record dir: %w", err)
	}
	path := filepath.Join(dir, runID+".pid")
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, "", fmt.Errorf("netsim: run record: %w", err)
	}
	fail := func(err error) (*os.File, string, error) {
		f.Close()
		os.Remove(tmp)
		return nil, "", fmt.Errorf("netsim: run record: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(err)
	}
	if _, err := f.WriteString(strconv.Itoa(os.Getpid()) + "\n"); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return f, path, nil
}

// runAlive reports whether the run recorded at path still holds its lock.
// A missing record means the owner is gone (or finishing Close, which
// tolerates namespaces vanishing under it).
func runAlive(path string) (bool, *os.File, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, err
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return true, nil, nil
	}
	if err != nil {
		f.Close()
		return false, nil, err
	}
	return false, f, nil // caller holds the lock while cleaning up
}

// Sweep deletes the namespaces and run records left behind by runs of
// prefix whose process is gone (detected by the run record's flock, not by
// pid). Only names of the exact form "<prefix>-<8 hex digits>-…" are
// considered, so other prefixes and live runs are never touched. It
// returns the namespaces it removed, sorted.
func Sweep(prefix string) ([]string, error) {
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("%w: prefix %q", ErrBadName, prefix)
	}
	nsRE := regexp.MustCompile(`^(` + regexp.QuoteMeta(prefix) + `-[0-9a-f]{8})-.+$`)
	pidRE := regexp.MustCompile(`^(` + regexp.QuoteMeta(prefix) + `-[0-9a-f]{8})\.pid$`)

	runs := map[string][]string{} // run id → namespaces
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("netsim: sweep: %w", err)
	}
	for _, e := range entries {
		if m := nsRE.FindStringSubmatch(e.Name()); m != nil {
			runs[m[1]] = append(runs[m[1]], e.Name())
		}
	}
	recDir := filepath.Join(runDir, prefix)
	recs, err := os.ReadDir(recDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("netsim: sweep: %w", err)
	}
	for _, e := range recs {
		if m := pidRE.FindStringSubmatch(e.Name()); m != nil {
			if _, ok := runs[m[1]]; !ok {
				runs[m[1]] = nil
			}
		}
	}

	var removed []string
	var errs []error
	for run, nss := range runs {
		rec := filepath.Join(recDir, run+".pid")
		alive, lock, err := runAlive(rec)
		if err != nil {
			errs = append(errs, fmt.Errorf("netsim: sweep %s: %w", run, err))
			continue
		}
		if alive {
			continue
		}
		ok := true
		for _, ns := range nss {
			if err := netns.DeleteNamed(ns); err != nil && !errors.Is(err, unix.ENOENT) {
				// EINVAL: not a mount point (half-created); drop the file.
				if !errors.Is(err, unix.EINVAL) || os.Remove(filepath.Join(netnsDir, ns)) != nil {
					errs = append(errs, fmt.Errorf("netsim: sweep netns %s: %w", ns, err))
					ok = false
					continue
				}
			}
			removed = append(removed, ns)
		}
		if ok && lock != nil {
			if err := os.Remove(rec); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("netsim: sweep %s: %w", rec, err))
			}
		}
		if lock != nil {
			lock.Close()
		}
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}

// isRunNamespace reports whether ns belongs to run id runID.
func isRunNamespace(ns, runID string) bool { return strings.HasPrefix(ns, runID+"-") }
