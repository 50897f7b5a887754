package main

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGCDefaults: the server runs at serverGCPercent unless GOGC is set,
// in which case the operator's value (applied by the runtime) stays.
func TestGCDefaults(t *testing.T) {
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	env := func(gogc string) func(string) string {
		return func(name string) string {
			if name == "GOGC" {
				return gogc
			}
			return ""
		}
	}

	gcDefaults(env(""))
	require.Equal(t, serverGCPercent, debug.SetGCPercent(100), "no GOGC: the server's default")

	debug.SetGCPercent(200) // as the runtime does for GOGC=200
	gcDefaults(env("200"))
	require.Equal(t, 200, debug.SetGCPercent(100), "GOGC set: left as the runtime applied it")
}
