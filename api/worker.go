package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// Workers is the workflow engine as workers reach it.
type Workers interface {
	// Resolve returns the hardware object a worker id (hardware name,
	// namespace/name or MAC) names, as namespace/name or the name alone
	// in the default namespace; ENOTFOUND when none.
	Resolve(ctx context.Context, id string) (string, error)
	// Next waits up to wait for the machine's next action; nil when none.
	// id is what Resolve returned.
	Next(ctx context.Context, id string, wait time.Duration) (*client.WorkerAction, error)
	// Report takes a report: ECONFLICT (with the reason) for a stale one
	// or one on an ended run; EINVALID for a malformed one.
	Report(ctx context.Context, id string, r client.WorkerReport) error
}

// maxWait bounds a long poll, below the server's write timeout.
const maxWait = 50 * time.Second

func (s *Server) handleNextAction(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.workers == nil {
		return Errorf(EUNAVAILABLE, "this server runs no workflow engine")
	}
	wait := 30 * time.Second
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return Errorf(state.EINVALID, "wait must be a duration such as 30s, got %q", v)
		}
		wait = min(d, maxWait)
	}
	// A shutting-down server takes no more work: its long polls end at
	// once (no action: the worker asks again, of the next server) instead
	// of holding the shutdown for their whole wait.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()
	a, err := s.workers.Next(ctx, c.hardware, wait)
	if err != nil && s.streams.Err() != nil && r.Context().Err() == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if a == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return writeJSON(w, http.StatusOK, a)
}

func (s *Server) handleReportAction(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.workers == nil {
		return Errorf(EUNAVAILABLE, "this server runs no workflow engine")
	}
	body, err := s.readBody(r)
	if err != nil {
		return err
	}
	var rep client.WorkerReport
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		return Errorf(state.EINVALID, "report: %v", err)
	}
	next := false
	if v := r.URL.Query().Get("next"); v != "" {
		if next, err = strconv.ParseBool(v); err != nil {
			return Errorf(state.EINVALID, "next must be true or false")
		}
	}
	if err := s.workers.Report(r.Context(), c.hardware, rep); err != nil {
		return err
	}
	ans := client.WorkerReportAnswer{Result: "accepted"}
	// The next action rides on the answer to a report that ended one: the
	// worker would ask for it right away, and the request it saves is a
	// third of the protocol's work per action. Asking never waits: an
	// action not ready at once is the long poll's to deliver. A shutting-
	// down server hands out nothing more.
	if next && endsAction(rep.State) && s.streams.Err() == nil {
		a, err := s.workers.Next(r.Context(), c.hardware, 0)
		if err != nil {
			// The report was taken; the worker asks for its next action as
			// it would have without next=true.
			s.log.Warn("hand out the next action with a report's answer", "worker", c.hardware, "err", err)
		}
		ans.Next = a
	}
	return writeJSON(w, http.StatusOK, ans)
}

// endsAction reports whether a report in state st ends its action.
func endsAction(st state.RunState) bool {
	return st == state.RunSuccess || st == state.RunFailed || st == state.RunTimeout
}

// workerHardware resolves a worker route's id (a hardware name or a MAC)
// to the one hardware object it names: namespace/name, or the name alone
// in the default namespace, as a worker token's binding is written. A
// worker token naming its machine by its bare name means its own
// namespace; any other id is resolved by the engine and must come out as
// the bound object, so a MAC of a namesake in another namespace does not.
// An id that resolves to nothing is returned as it is (it then matches no
// binding, or the engine says it is unknown).
func (s *Server) workerHardware(ctx context.Context, p *Principal, id string) string {
	if p.Role == RoleWorker {
		_, name, namespaced := strings.Cut(p.Hardware, "/")
		if id == p.Hardware || namespaced && id == name {
			return p.Hardware
		}
	}
	if s.workers == nil {
		return id
	}
	hw, err := s.workers.Resolve(ctx, id)
	if err != nil {
		return id
	}
	return hw
}
