//go:build linux

// Package conformance is a black-box conformance suite for the Doorman
// classic protocol (spec/doorman.md). It drives an implementation described
// by an Adapter (a TOML file) inside network namespaces it creates, and
// judges it only by the packets it sends and by whether TCP ports become
// reachable, never by its internals.
//
// Topology (all addresses from 198.18.0.0/15):
//
//	 srv 198.18.0.1 (doorman, listeners)
//	       |
//	  [ bridge in lan ns ]
//	   |        |        |
//	 cl1 .2   cl2 .3   frn .4
//	(guest)  (guest)  (not in the guest list)
//
// Each case starts a fresh daemon with a fresh work directory, so replay
// state never leaks between cases.
package conformance
