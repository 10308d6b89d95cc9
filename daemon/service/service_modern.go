package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/doorman-project/doorman/daemon"
	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/protocol"
)

// The service's wiring of the modern protocol (spec section 12).
//
// What a reload (SIGHUP) changes: the private key, classic on|off,
// modern-window, modern-rate and modern-burst all take effect at once
// (new rate limits start every source afresh). The stamp store follows
// hash-archive and, like it, changes only on restart. The stamp store is
// opened at every start, whether or not the guest list has modern guests,
// so that a reload that adds the first one finds it in place; on a
// classic-only site it stays a 64-byte file.

// loadModernKey loads the doorman's private key (MODERN-12.21) and
// returns its Opener. If the guest list has a modern guest a key that does
// not load is an error that names the file and `doormand keygen`;
// without one the doorman runs without a key (modern knocks are counted as
// modern-no-key), and a key file that exists but does not load draws a
// warning.
func loadModernKey(cfg *config.Daemon, guests *daemon.Guests, checkPerms bool, log *slog.Logger) (*protocol.Opener, error) {
	key, err := config.LoadPrivateKey(cfg.PrivateKey, checkPerms)
	defer clear(key[:])
	if err != nil {
		if n := guests.Modern(); n > 0 {
			return nil, fmt.Errorf("the guest list has %d modern guest(s), which need the doorman's private key: %w "+
				"(`doormand keygen` creates it; `doormand pubkey` prints the public key for the knockers)", n, err)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("private key does not load: modern knocks are refused", "err", err)
		}
		return nil, nil
	}
	return protocol.NewOpener(&key), nil
}

// modernSettings copies the modern keywords of cfg into st.
func modernSettings(cfg *config.Daemon, st *daemon.Settings) {
	st.ClassicOff = !cfg.Classic
	st.ModernWindow = cfg.ModernWindow
	st.ModernRate, st.ModernBurst = cfg.ModernRate, cfg.ModernBurst
}

// stampOpener returns the engine's OpenStamps: the stamp store next to the
// replay store (config.Daemon.StampFile), checked as every state file is.
// *st receives the store, for closeStamps.
func (s *Service) stampOpener(st **replay.Stamps) func(context.Context) (daemon.StampStore, error) {
	return func(context.Context) (daemon.StampStore, error) {
		path := s.cfg.StampFile()
		if err := config.CheckStatePath(path); err != nil {
			return nil, fmt.Errorf("stamp store: %w", err)
		}
		x, err := replay.OpenStamps(path, replay.Options{Logger: s.log})
		if err != nil {
			return nil, err
		}
		*st = x
		return x, nil
	}
}

// closeStamps closes the stamp store if it was opened.
func (s *Service) closeStamps(st **replay.Stamps) {
	if *st == nil {
		return
	}
	if err := (*st).Close(); err != nil {
		s.log.Error("stamp store", "err", err)
	}
}
