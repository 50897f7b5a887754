package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
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
	if err := s.workers.Report(r.Context(), c.hardware, rep); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"result": "accepted"})
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
