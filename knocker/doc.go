// Package knocker is the Doorman client: it builds a knock, classic
// (Doorman 0.81 compatible: [Send]) or modern (spec section 12, made with
// the knocker's key pair: [SendModern]), sends it as one UDP datagram, and
// optionally waits for the door it asked for to open and relays a
// connection through it.
//
// A knock asks a doorman daemon to open one TCP port for one connection from
// the sender's address. Nothing ever answers a knock (spec/doorman.md), so
// the only way to learn that it worked is to try the TCP connection, and
// the door lets exactly one connection through, so a probe uses it up.
// [DialOpen] keeps the connection that got through so that [Proxy] can
// relay it (the way to use a door from ssh's ProxyCommand); [KnockReady]
// and [KnockReadyModern] confirm a door with a probe and then knock again,
// so that a fresh door waits for the caller's own connection; [WaitOpen]
// only probes.
//
// A secret can come from the configuration file, a private file
// ([ReadSecretFile]) or a stream ([ReadSecretLine]); a secret on a command
// line is visible to every local user in the process list.
//
// The tag of every classic knock is drawn from crypto/rand ([NewTag],
// CLASSIC-3.3/1); a fixed tag is only for test vectors and dry runs
// ([Options.Tag]). The modern private key comes from its own file
// ([LoadPrivateKey]).
//
// The client's configuration file, ~/.knockcf ([DefaultConfigPath]), is read
// by [LoadConfig] and [ParseConfig] (spec section 10, CLASSIC-10.1 to 10.3);
// its server records ([ModernConfig], MODERN-12.22) choose the modern
// protocol for a host.
package knocker
