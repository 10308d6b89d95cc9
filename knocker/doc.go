// Package knocker is the Doorman client: it builds a classic (Doorman 0.81
// compatible) knock, sends it as one UDP datagram, and optionally waits for
// the door it asked for to open and relays a connection through it.
//
// A knock asks a doorman daemon to open one TCP port for one connection from
// the sender's address. Nothing ever answers a knock (spec/doorman.md), so
// the only way to learn that it worked is to try the TCP
// connection: [WaitOpen] does that, and [DialOpen] keeps the connection that
// succeeded so that [Proxy] can relay it (the door lets exactly one
// connection through, so a probe connection uses it up).
//
// The tag of every knock is drawn from crypto/rand ([NewTag], CLASSIC-3.3/1);
// a fixed tag is only for test vectors and dry runs ([Options.Tag]).
//
// The client's configuration file, ~/.knockcf ([DefaultConfigPath]), is read
// by [LoadConfig] and [ParseConfig] (spec section 10, CLASSIC-10.1 to 10.3).
package knocker
