package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

func TestStatusCommands(t *testing.T) {
	s := apitest.MustRunServer(t, apitest.WithTokens())
	admin := s.Tokens["admin"]
	s.PutGit(t, "hardware/node-01.yaml", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.11"))

	code, out, errOut := tinkAt(t, s, "--token", admin, "sync")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `^synced\nApplied:\s+main@sha1:0123456789abcdef0123456789abcdef01234567\n`, out)
	require.Regexp(t, `(?m)^Reconciling:\s+yes$`, out)
	require.Regexp(t, `(?m)^Objects:\s+1 Hardware \(1 git, 0 api\), 0 Template \(0 git, 0 api\), 0 Workflow \(0 git, 0 api\)$`, out)
	require.Regexp(t, `(?m)^Drift:\s+none$`, out)

	f := writeFile(t, "n1.yaml", apitest.HardwareYAML("node-01", "52:54:00:10:00:01", "10.10.1.99"))
	code, _, errOut = tinkAt(t, s, "--token", admin, "hardware", "push", "--file", f, "--force", "--reason", "NIC swap")
	require.Equal(t, 0, code, errOut)

	code, out, _ = tinkAt(t, s, "--token", s.Tokens["viewer"], "status")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^Drift:\s+1 object\(s\) overridden through the API$`, out)
	require.Regexp(t, `(?m)^  drift: hardware/node-01 overridden by api:admin \d+s ago: NIC swap \(spec.interfaces\[0\].dhcp.ip.address\)$`, out)

	code, out, _ = tinkAt(t, s, "--token", s.Tokens["viewer"], "status", "-o", "json")
	require.Equal(t, 0, code)
	var st client.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Len(t, st.Drift, 1)

	code, _, errOut = tinkAt(t, s, "--token", s.Tokens["operator"], "suspend")
	require.Equal(t, 1, code)
	require.Equal(t, "tink: token operator has role operator; POST /v1/suspend needs admin\n", errOut)

	code, out, _ = tinkAt(t, s, "--token", admin, "suspend")
	require.Equal(t, 0, code)
	require.Regexp(t, `^reconciliation suspended\n(.|\n)*Reconciling:\s+no: suspended \(tink resume\)\n`, out)

	code, _, errOut = tinkAt(t, s, "--token", admin, "sync")
	require.Equal(t, 1, code)
	require.Equal(t, "tink: reconciliation is suspended; resume it first\n", errOut)

	code, out, _ = tinkAt(t, s, "--token", admin, "resume", "-o", "yaml")
	require.Equal(t, 0, code)
	require.Contains(t, out, "suspended: false\n")

	// A revision with errors: sync reports them and exits 1.
	s.Syncer.Err = nil
	_, err := s.Store.Apply(context.Background(), &state.Batch{Actor: state.ActorReconciler, Sync: &state.SyncStatus{
		LastAttemptedRevision: "main@sha1:bad", LastAppliedRevision: apitest.Revision,
		Errors: []state.SyncError{{File: "hardware/x.yaml", Line: 3, Column: 5, Path: "spec", Message: "broken"}},
	}})
	require.NoError(t, err)
	code, out, _ = tinkAt(t, s, "--token", admin, "status")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^Attempted:\s+main@sha1:bad$`, out)
	require.Contains(t, out, "  error: hardware/x.yaml:3:5: spec: broken\n")
}

// TestStatusShowsSourceError: a Git remote that fails shows in tink status
// with how often it failed and when the next try is.
func TestStatusShowsSourceError(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	var b strings.Builder
	st := &client.Status{
		Sync:      client.SyncStatus{LastAppliedRevision: "main@sha1:abc"},
		Ready:     true,
		Objects:   map[string]map[string]int{},
		Workflows: map[string]int{},
		Source: &client.SourceStatus{Source: "https://git.example/fleet.git", Ref: "branch main", LastFetch: now.Add(-3 * time.Minute),
			LastError: "ls-remote https://git.example/fleet.git: authentication required", Failures: 4, NextSync: now.Add(40 * time.Second)},
	}
	require.NoError(t, printStatus(&b, st, now))
	require.Regexp(t, `(?m)^Source:\s+https://git.example/fleet.git \(branch main\), fetched 3m00s ago$`, b.String())
	require.Regexp(t, `(?m)^Source error:\s+ls-remote https://git.example/fleet.git: authentication required \(4 failed in a row; next try in 40s\)$`, b.String())

	st.Source.Failures, st.Source.LastError = 0, ""
	b.Reset()
	require.NoError(t, printStatus(&b, st, now))
	require.NotContains(t, b.String(), "Source error")
	require.NotContains(t, b.String(), "Last attempt")

	// A sync that failed shows its class and reason.
	st.Sync.Failure, st.Sync.Reason = "transient", "applying the revision failed (the server's log has the details); retry 2 in 2s (transient: retried with backoff until a sync applies)"
	b.Reset()
	require.NoError(t, printStatus(&b, st, now))
	require.Regexp(t, `(?m)^Last attempt:\s+transient: applying the revision failed \(the server's log has the details\); retry 2 in 2s`, b.String())
}

// TestStatusShowsReplica: with several replicas, status says which one
// answered and whether it leads.
func TestStatusShowsReplica(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	st := &client.Status{Objects: map[string]map[string]int{}, Workflows: map[string]int{}}
	var b strings.Builder
	require.NoError(t, printStatus(&b, st, now))
	require.NotContains(t, b.String(), "Replica", "one process: no replica line")

	st.Replica = &client.ReplicaStatus{Name: "tink-server-7c9f-x2", Leader: true}
	b.Reset()
	require.NoError(t, printStatus(&b, st, now))
	require.Regexp(t, `(?m)^Replica:\s+tink-server-7c9f-x2, leader$`, b.String())
	st.Replica.Leader = false
	b.Reset()
	require.NoError(t, printStatus(&b, st, now))
	require.Regexp(t, `(?m)^Replica:\s+tink-server-7c9f-x2, follower`, b.String())
}
