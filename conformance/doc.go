//go:build linux

// Package conformance is a black-box conformance suite for the Doorman
// protocols, classic and modern (spec/doorman.md). It drives an
// implementation, a daemon or a client, described by an Adapter (a TOML
// file documented in conformance/README.md, read by conformance/adapter)
// inside network namespaces it creates, and judges it only by the packets
// it sends, by whether TCP ports become reachable and by what happens to a
// knock sent again, never by its internals.
//
// Topology (built with internal/netsim; IPv4 from 198.18.0.0/15, IPv6 from
// 2001:db8::/32; every namespace named "<prefix>-<8 hex digits>-<host>",
// prefix "dmcf" by default):
//
//	srv 198.18.1.1 2001:db8:0:1::1 on dmcf0 (the implementation, listeners)
//	    198.18.2.1 2001:db8:0:2::1 on dmcf1 (another interface, not watched,
//	      |                                   linked to an idle host oth)
//	 [ bridge in the sw.lan namespace ]
//	  |              |              |
//	cl1 .2 ::2     cl2 .3 ::3     frn .4 ::4
//	(guest)        (guest)        (not in the guest list)
//
// Each case starts a fresh daemon with a fresh work directory, so replay
// state never leaks between cases. Run and RunWith run the suite as Go
// subtests; RunSuite returns the results for other reporting.
package conformance
