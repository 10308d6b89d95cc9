//go:build linux

// Package sim holds doorman's end-to-end scenarios: stories such as a
// knock and its one connection, a replay, NAT, a lossy link or a flood,
// played against a real daemon on a network of their own built with
// internal/netsim. doorman-sim is its command line, and TestScenarios
// plays every scenario in CI.
//
// A Scenario records steps and checks on its Run; Play plays one and
// returns a Result with a Verdict, the checks and any performance
// Figures. The daemon under test is the built doormand, started through
// internal/doormandtest, or any implementation a conformance adapter
// describes (RunConfig.Impl): checks judge what an outside observer sees
// wherever they can, so one scenario serves every implementation. What a
// scenario needs beyond namespaces, veth pairs and bridges (Needs) is
// probed before it is played: a kernel that lacks it skips the scenario,
// a daemon that lacks it makes it unsupported.
//
// The package is Linux only, as the namespaces are.
package sim
