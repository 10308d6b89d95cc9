//go:build !linux

// Command doorman-conformance needs Linux network namespaces.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "doorman-conformance needs Linux (network namespaces)")
	os.Exit(2)
}
