// Package citest holds the one rule for tests that need a real component
// (a program, a package, a built agent): on a developer's machine without
// it they skip, saying how to get it; under CI=true, where .ci/run installs
// every component, a missing one fails the test, because a skipped test
// proves nothing.
package citest

import (
	"os"
	"testing"
)

// Missing reports that the component the test needs is not here: it fails
// the test under CI=true and skips it elsewhere, with msg (what is missing
// and how to install it) either way.
func Missing(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
		return
	}
	tb.Skip(msg)
}
