// Package bmc drives machines' baseboard management controllers through
// bmclib v2: power on/off/cycle/reset/soft/status, the next boot device and
// virtual media, for the workflow engine (a run's boot actions, before and
// after it) and for the API's imperative overrides.
//
// A BMC is slow, flaky and shared, so every operation here opens its own
// connection, does its calls, and closes it again; each call has a deadline
// (Config.CallTimeout) so a BMC that stops answering costs seconds, not
// bmclib's minute, and a failed attempt is retried with exponential backoff.
// The outcome of every operation, success or final failure, is one bmc event
// on the hardware in the state store, so "what did we do to node-07 and did it
// work" is answered by the event log, and the last power state and BMC error
// are kept in memory for the API (Controller.Status). Config.OnCall hears of
// every operation too, so the server can count and time them without this
// package knowing about metrics.
//
// Credentials come from the server's secrets directory (Secrets), are read
// on every operation so that a rotated password needs no restart, and never
// reach errors, events or logs: bmclib keeps the password in exported fields
// of its client, so that client is never printed, and every message built
// from a BMC's answer has the password scrubbed from it.
//
// Deliberately, this package does not import package reconciler: the
// reconciler's plan uses Steps and Describe to say what a workflow will do to
// a machine, so the dependency points the other way.
package bmc
