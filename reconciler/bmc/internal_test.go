package bmc

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDelay shows the backoff doubles from Backoff and stops at MaxBackoff.
func TestDelay(t *testing.T) {
	c, err := New(Config{})
	require.NoError(t, err)
	var got []time.Duration
	for attempt := 1; attempt <= 7; attempt++ {
		got = append(got, c.delay(attempt))
	}
	require.Equal(t, []time.Duration{
		500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second,
	}, got)
	require.Equal(t, DefaultRetries, c.retries)
	require.Equal(t, DefaultCallTimeout, c.callTimeout)
}

// TestOneLine shows bmclib's multi-line errors become one line without
// its summary lines.
func TestOneLine(t *testing.T) {
	msg := "2 errors occurred:\n\t* provider: ipmitool: Error: Unable to establish IPMI v2 / RMCP+ session: exit status 1\n\t* no Opener implementations found\n\n"
	require.Equal(t, "provider: ipmitool: Error: Unable to establish IPMI v2 / RMCP+ session: exit status 1", oneLine(msg))
	require.Equal(t, "failed to set power state", oneLine("1 error occurred:\n\t* failed to set power state\n\n"))
}
