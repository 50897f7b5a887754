package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// noRun is the workflow count key for workflows that never ran.
const noRun = "NONE"

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request, _ *call) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
	return nil
}

// handleReadyz answers 200 once the first sync has finished or failed (the
// store is open once a Server exists).
func (s *Server) handleReadyz(w http.ResponseWriter, _ *http.Request, _ *call) error {
	if !s.ready() {
		return Errorf(EUNAVAILABLE, "not ready: the first sync has not finished yet")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
	return nil
}

func (s *Server) ready() bool { return s.syncer == nil || s.syncer.Ready() }

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, _ *call) error {
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, _ *call) error {
	st, err := s.status(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

// handleSync records who asked for a sync, runs it and answers with the
// status it left. A revision with errors is the answer, not a failure of
// the call (200): the status lists every error in sync.errors, where a
// failed call could carry only one, and tink sync exits 1 on them. The
// syncer reports such a revision as EINVALID; an EINVALID that left no
// errors in the status is a fault of the server.
func (s *Server) handleSync(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.syncer == nil {
		return Errorf(EUNAVAILABLE, "this server has no Git source to sync")
	}
	ctx := r.Context()
	b := &state.Batch{Actor: c.actor(), Events: []state.Event{{Type: state.EventSync, Message: fmt.Sprintf("sync requested through the API by %s", c.who.Name)}}}
	if _, err := s.store.Apply(ctx, b); err != nil {
		return err
	}
	syncErr := s.syncer.Sync(ctx)
	st, err := s.status(ctx)
	if err != nil {
		if syncErr != nil {
			return syncErr
		}
		return err
	}
	if syncErr != nil {
		// Errors in the repository (or a plan refused because it prunes
		// too much: stalled, it needs a person) are not errors of this
		// call: the status answered holds every one of them. Anything
		// else is.
		stalled := st.Sync.Failure == string(state.FailureStalled)
		invalid := state.ErrorCode(syncErr) == state.EINVALID
		switch {
		case stalled || invalid && len(st.Sync.Errors) > 0:
		case invalid:
			return state.Errorf(state.EINTERNAL, "sync said the revision is invalid but recorded no errors: %s", state.ErrorMessage(syncErr))
		default:
			return syncErr
		}
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleSuspend(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.syncer == nil {
		return Errorf(EUNAVAILABLE, "this server has no Git source to suspend")
	}
	if err := s.syncer.Suspend(r.Context(), c.actor()); err != nil {
		return err
	}
	return s.handleStatus(w, r, c)
}

func (s *Server) handleResume(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.syncer == nil {
		return Errorf(EUNAVAILABLE, "this server has no Git source to resume")
	}
	if err := s.syncer.Resume(r.Context(), c.actor()); err != nil {
		return err
	}
	return s.handleStatus(w, r, c)
}

// status gathers the server's status. It reads every object and run: the
// fleet is bounded, and status is asked for by people and dashboards, not in
// a hot loop.
func (s *Server) status(ctx context.Context) (*client.Status, error) {
	ss, err := s.store.SyncStatus(ctx)
	if err != nil {
		return nil, err
	}
	out := &client.Status{
		Sync: client.SyncStatus{
			LastAttemptedRevision: ss.LastAttemptedRevision,
			LastAppliedRevision:   ss.LastAppliedRevision,
			Errors:                ss.Errors,
			Suspended:             ss.Suspended,
			LastSyncAt:            ss.LastSyncAt,
			Failure:               string(ss.Failure),
			Reason:                ss.Reason,
			Retries:               ss.Retries,
			NextRetryAt:           ss.NextRetryAt,
		},
		Ready:     s.ready(),
		Objects:   map[string]map[string]int{},
		Workflows: map[string]int{},
		Drift:     []client.Drift{},
	}
	if out.Sync.Errors == nil {
		out.Sync.Errors = []state.SyncError{}
	}
	if s.source != nil {
		src := s.source()
		out.Source = &src
	}
	if s.replica != nil {
		r := s.replica()
		out.Replica = &r
	}
	if ss.LastDuration > 0 {
		out.Sync.LastDuration = ss.LastDuration.String()
	}
	for _, k := range []string{state.KindHardware, state.KindTemplate, state.KindWorkflow, state.KindMachine} {
		out.Objects[k] = map[string]int{string(state.SourceGit): 0, string(state.SourceAPI): 0}
	}

	workflows := map[state.ObjectKey]bool{}
	q := state.ObjectQuery{Limit: maxListLimit}
	for {
		page, err := s.store.ListObjects(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Objects {
			if out.Objects[o.Kind] == nil {
				out.Objects[o.Kind] = map[string]int{}
			}
			out.Objects[o.Kind][string(o.Source)]++
			if o.Kind == state.KindWorkflow {
				workflows[o.Key()] = true
			}
			if ov := o.Override; ov != nil {
				out.Drift = append(out.Drift, client.Drift{
					Kind: o.Kind, Namespace: o.Namespace, Name: o.Name,
					By: string(ov.By), At: ov.At, Reason: ov.Reason, Fields: specDrift(ov.GitSpec, o.Spec),
				})
			}
		}
		if q.Continue = page.Continue; q.Continue == "" {
			break
		}
	}

	// Runs come in key order (namespace, workflow, number): the last run of
	// each workflow is its latest.
	latest := map[state.ObjectKey]state.RunState{}
	rq := state.RunQuery{Limit: maxListLimit}
	for {
		page, err := s.store.ListRuns(ctx, rq)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Runs {
			latest[state.ObjectKey{Kind: state.KindWorkflow, Namespace: r.Namespace, Name: r.Workflow}] = r.State
		}
		if rq.Continue = page.Continue; rq.Continue == "" {
			break
		}
	}
	for key := range workflows {
		st, ok := latest[key]
		if !ok {
			out.Workflows[noRun]++
			continue
		}
		out.Workflows[string(st)]++
	}
	sort.Slice(out.Drift, func(i, j int) bool {
		a, b := out.Drift[i], out.Drift[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	bounds, err := s.store.EventBounds(ctx)
	if err != nil {
		return nil, err
	}
	out.Events = client.EventBounds{Oldest: bounds.Oldest, Latest: bounds.Latest}
	return out, nil
}
