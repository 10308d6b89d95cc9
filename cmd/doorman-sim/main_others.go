//go:build !linux

// Command doorman-sim plays doorman's end-to-end scenarios on simulated
// Linux networks; on other systems it only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "doorman-sim needs Linux")
	os.Exit(1)
}
