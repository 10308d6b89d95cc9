//go:build linux

package adapter

import (
	"errors"
	"fmt"
)

// ErrSetup marks a failure that is the adapter's or the harness's, not the
// implementation's: a template that does not render, a program that
// cannot be executed, a file that cannot be written. Nothing was judged.
var ErrSetup = errors.New("setup error")

// setupErr marks err as a setup error; nil stays nil.
func setupErr(err error) error {
	if err == nil || errors.Is(err, ErrSetup) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrSetup, err)
}
