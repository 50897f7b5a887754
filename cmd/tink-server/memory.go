package main

import "runtime/debug"

// serverGCPercent is tink-server's GOGC unless the environment sets one.
//
// The runtime's default, 100, lets the heap grow to twice what is live
// before a collection, and its scavenger keeps up to 110% of that goal
// mapped. A server holding 10,000 machines keeps about 250 MB live (the
// loader's, the reconciler's and the API's caches of the fleet, Badger's
// memtable), so at 100 it idled at 650-1,000 MiB. At 50 the heap grows to
// 1.5 times what is live: more collections during a full sync (each one
// marks the live heap, a few hundred ms of one core at 10,000 machines,
// concurrently with the sync), for a third less memory held at any time.
const serverGCPercent = 50

// gcDefaults sets the garbage collector's target for the server process,
// unless the operator set GOGC (which the runtime has applied already).
// GOMEMLIMIT, a soft limit for a container's memory (say 90% of its
// limit), is left to the operator and the runtime.
func gcDefaults(getenv func(string) string) {
	if getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(serverGCPercent)
}
