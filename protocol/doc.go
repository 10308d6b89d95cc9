// Package protocol is the Doorman wire protocol with no I/O: it builds, parses
// and verifies classic (Doorman 0.81 compatible) knocks, holds the guest
// record a knock is verified against, and makes the replay decision.
//
// Everything here follows spec/doorman.md; requirement IDs such as
// CLASSIC-3.2 in comments and tests point into that document.
//
// The package is built for the daemon's hot path: parsing and verifying a
// knock of a valid length does not allocate, checks run cheapest first
// (length, syntax, guest, port, address, MAC, replay), and the MAC is
// compared in constant time.
package protocol
