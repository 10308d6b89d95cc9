// Package protocol is the Doorman wire protocol with no I/O: it builds, parses
// and verifies classic (Doorman 0.81 compatible) knocks, seals and opens
// modern knocks (Noise X, spec section 12) and parses the X25519 keys they
// use, holds the guest record a knock is verified against, and makes the
// classic replay decision.
//
// Everything here follows spec/doorman.md; requirement IDs such as
// CLASSIC-3.2 or MODERN-12.6 in comments and tests point into that document.
//
// The package is built for the daemon's hot path: parsing and verifying a
// classic knock of a valid length does not allocate, checks run cheapest
// first (length, syntax, guest, port, address, MAC, replay), and MACs are
// compared in constant time. For a modern knock, Opener.Precheck (type,
// length, mac1) does not allocate either and comes before any public-key
// work; Opener.Open then authenticates the knocker's key and decrypts the
// request, and VerifyModern runs the checks that follow the guest lookup.
package protocol
