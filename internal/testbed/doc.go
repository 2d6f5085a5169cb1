// Package testbed starts the real peers hap-monitor talks to, for tests,
// the built-in example and the benchmark harness: HAProxy (Debian's
// package), carbon-cache and carbon-relay (graphite-carbon), statsd (npm
// statsd@0.9.0), a custom Telegraf v1.39.3 build and the hap-monitor binary
// of this checkout.
//
// Every Start* function works without the testing package and returns an
// error naming the missing program and how to install it; each New* twin
// takes a testing.TB, fails the test on error and registers Close with
// t.Cleanup. Every server listens on 127.0.0.1 only, and unix sockets live
// in short temporary directories (os.MkdirTemp("", "hm")) because of the
// 107-byte socket path limit.
//
// Fakes stand in for peers that must misbehave on demand: GraphiteSink (a
// carbon that stalls, pauses, closes, lingers, reads slowly or crashes),
// UDPSink, Forwarder and FakeSocket (an HAProxy stats socket), with
// SyncBuffer for logs read while they are written.
//
// The package never imports a plugin of this project, so any package's
// tests may use it.
package testbed
