// Package service is doormand's shell around the engine (package daemon):
// it reads doormand.cf and the guest list, sets up logging, takes the pid
// file, opens the events file, builds the configured firewall backend, the
// capture and the replay store, tracks connections through the kernel's
// sock_diag (SockDiag), and runs the engine with SIGHUP reloading the
// reloadable settings and SIGUSR1 reporting the counters. cmd/doormand is
// its command line.
package service
