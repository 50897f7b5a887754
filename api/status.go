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

// status gathers the server's status. The counts come from the fleet
// index (fleetindex.go), brought up to date from the event log: a status of
// a 10,000-machine fleet reads what changed, not every object and run.
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

	err = s.index.view(ctx, s.store, func(ix *fleetIndex) {
		for key, e := range ix.objects {
			if out.Objects[key.Kind] == nil {
				out.Objects[key.Kind] = map[string]int{}
			}
			out.Objects[key.Kind][string(e.source)]++
			if e.drift != nil {
				out.Drift = append(out.Drift, *e.drift)
			}
			if key.Kind != state.KindWorkflow {
				continue
			}
			if run, ok := ix.runs[key]; ok {
				out.Workflows[string(run.state)]++
			} else {
				out.Workflows[noRun]++
			}
		}
	})
	if err != nil {
		return nil, err
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
