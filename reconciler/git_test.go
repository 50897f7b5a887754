package reconciler_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/gitsource"
	"github.com/tinkops/tinkops/gitsource/gittest"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/state"
)

// TestGitScenario follows a repository served by git daemon: a valid
// commit applies; an invalid one moves only lastAttempted; the fix
// applies; a force-push back to an older commit applies; a Git server that
// goes away shows in the source's status and backs off; back, it recovers.
func TestGitScenario(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	repoGit := gittest.NewRepo(t)
	files := repoFiles(2)
	good := repoGit.Commit("two machines", files)
	daemon := gittest.ServeDaemon(t, repoGit.Base)

	st := MustOpenStore(t)
	src, err := gitsource.NewGit(gitsource.Config{Repo: daemon.URL + repoGit.Name, PollInterval: 200 * time.Millisecond,
		RetryMin: 50 * time.Millisecond, Timeout: 5 * time.Second, CacheDir: t.TempDir()})
	require.NoError(t, err)
	loop := reconciler.NewLoop(reconciler.New(reconciler.Config{Store: st}), src, 0)
	srcDone, loopDone := make(chan error, 1), make(chan error, 1)
	go func() { srcDone <- src.Run(ctx) }()
	go func() { loopDone <- loop.Run(ctx) }()

	rev := func(hash string) string { return "main@sha1:" + hash }
	s := waitApplied(t, st, func(s *state.SyncStatus) bool { return s.LastAppliedRevision == rev(good) })
	require.Empty(t, s.Errors)
	evs, err := st.Events(ctx, state.EventQuery{Filter: state.EventFilter{Types: []state.EventType{state.EventSync}}})
	require.NoError(t, err)
	require.Contains(t, evs[len(evs)-1].Message, fmt.Sprintf("applied %s (%s by Ada Lovelace <ada@example.com>: two machines)", rev(good), good[:12]))

	// An invalid commit: attempted, not applied.
	bad := repoGit.Commit("typo", map[string]string{"hardware/node-02.yaml": strings.Replace(files["hardware/node-02.yaml"], "disks:", "disk:", 1)})
	s = waitApplied(t, st, func(s *state.SyncStatus) bool { return s.LastAttemptedRevision == rev(bad) })
	require.Equal(t, rev(good), s.LastAppliedRevision)
	require.Equal(t, "hardware/node-02.yaml", s.Errors[0].File)
	require.Contains(t, s.Errors[0].Message, `unknown field "disk"`)

	// The fix applies.
	fix := repoGit.Commit("fix typo; add node-03", map[string]string{
		"hardware/node-02.yaml": files["hardware/node-02.yaml"],
		"hardware/node-03.yaml": fmt.Sprintf(hwFmt, "node-03", 3, "node-03", 3, 3),
	})
	waitApplied(t, st, func(s *state.SyncStatus) bool { return s.LastAppliedRevision == rev(fix) && len(s.Errors) == 0 })
	_, err = st.GetObject(ctx, state.ObjectKey{Kind: "Hardware", Name: "node-03"})
	require.NoError(t, err)

	// A force-push back to the first commit applies it (node-03 stays:
	// prune is off, and the plan says so).
	repoGit.SetBranch(good)
	waitApplied(t, st, func(s *state.SyncStatus) bool { return s.LastAppliedRevision == rev(good) })

	// The Git server goes away: the source reports it and backs off.
	daemon.Stop()
	require.Eventually(t, func() bool { return src.Status().Failures >= 2 }, 10*time.Second, 20*time.Millisecond)
	status := src.Status()
	require.NotEmpty(t, status.LastError)
	require.Equal(t, rev(good), status.Revision, "the last snapshot stays")
	// Sync now says the remote does not answer: unavailable, not internal.
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	err = loop.Sync(syncCtx)
	syncCancel()
	require.Equal(t, state.EUNAVAILABLE, state.ErrorCode(err), "%v", err)
	require.Contains(t, state.ErrorMessage(err), "fetch ")

	// Back: a new commit is applied.
	daemon.Restart(t)
	again := repoGit.Commit("after the outage", map[string]string{"hardware/node-04.yaml": fmt.Sprintf(hwFmt, "node-04", 4, "node-04", 4, 4)})
	waitApplied(t, st, func(s *state.SyncStatus) bool { return s.LastAppliedRevision == rev(again) })
	require.Zero(t, src.Status().Failures)

	cancel()
	require.NoError(t, <-loopDone)
	<-srcDone
}

// TestGitEventsNameCommitAuthor: every event a Git revision causes (the
// objects it creates, the runs it starts, the sync itself) names the
// commit's author and committer, read from the commit object of a real
// repository.
func TestGitEventsNameCommitAuthor(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	repoGit := gittest.NewRepo(t)
	files := repoFiles(2)
	hash := repoGit.CommitAs("Grace Hopper <grace@example.com>", "two machines", files)

	st := MustOpenStore(t)
	src, err := gitsource.NewGit(gitsource.Config{Repo: repoGit.FileURL(), PollInterval: time.Hour, Timeout: 5 * time.Second, CacheDir: t.TempDir()})
	require.NoError(t, err)
	loop := reconciler.NewLoop(reconciler.New(reconciler.Config{Store: st}), src, 0)
	done := make(chan error, 2)
	go func() { done <- src.Run(ctx) }()
	go func() { done <- loop.Run(ctx) }()
	rev := "main@sha1:" + hash
	waitApplied(t, st, func(s *state.SyncStatus) bool { return s.LastAppliedRevision == rev })

	evs, err := st.Events(ctx, state.EventQuery{})
	require.NoError(t, err)
	var kinds []string
	for _, ev := range evs {
		if ev.Revision != rev {
			continue
		}
		require.Equal(t, "Grace Hopper <grace@example.com>", ev.Author, "event %d %s: %s", ev.Seq, ev.Type, ev.Message)
		require.Equal(t, "Ada Lovelace <ada@example.com>", ev.Committer, "event %d %s: %s", ev.Seq, ev.Type, ev.Message)
		kinds = append(kinds, string(ev.Type)+" "+ev.Kind)
	}
	require.Contains(t, kinds, "created Hardware")
	require.Contains(t, kinds, "created Workflow")
	require.Contains(t, kinds, "run-state Workflow", "the run a commit starts names its author")
	require.Contains(t, kinds, "sync ")
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, <-done)
}

// repoFiles is repo(n) as the files of a commit.
func repoFiles(n int) map[string]string {
	files := map[string]string{}
	for name, f := range repo(n) {
		files[name] = string(f.Data)
	}
	return files
}
