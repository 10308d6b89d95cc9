// Command knock is the Doorman client: it sends one authenticated UDP knock
// asking a doorman daemon to open a TCP port for this host, and can then
// wait for the door, run a program, or relay a connection through it (for
// ssh's ProxyCommand).
//
//	knock [-h] [-v] [-f cfgpath] [-g group] [-p port] [-s secret] [-r "program args"] host service
//	knock --proxy [options] host port
//	knock keygen [-f cfgpath] [FILE]
//	knock pubkey [-f cfgpath] [FILE]
//
// It reads the same ~/.knockcf file and takes the same options as the
// original Doorman 0.81 knock, whose classic knock (a group and an
// HMAC-MD5 with its secret) it sends to most hosts. A host with a server
// record in the configuration gets a modern knock instead (spec section
// 12), made with the knocker's key pair, which keygen creates. Run "knock
// --help" for the rest.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
