package boot_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/tinkops/tinkops/boot"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// fixture is a boot server on a real Badger store, with a clock the test
// moves (the server's hardware index lives a second).
type fixture struct {
	t     *testing.T
	store *badger.Store
	srv   *boot.Server
	mu    sync.Mutex
	now   time.Time
}

func newFixture(t *testing.T, cfg boot.Config) *fixture {
	t.Helper()
	st, err := badger.Open(context.Background(), t.TempDir(), badger.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	f := &fixture{t: t, store: st, now: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)}
	cfg.Store = st
	cfg.Now = f.clock
	if cfg.APIPort == 0 {
		cfg.APIPort = 42113
	}
	f.srv, err = boot.New(cfg)
	require.NoError(t, err)
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// later moves the clock past the server's index lifetime, as a machine
// that asks again a few seconds later would find it.
func (f *fixture) later() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(2 * time.Second)
}

// put stores an object from YAML (its spec only).
func (f *fixture) put(kind, name, specYAML string) {
	f.t.Helper()
	spec, err := yaml.YAMLToJSON([]byte(specYAML))
	require.NoError(f.t, err)
	ctx := context.Background()
	key := state.ObjectKey{Kind: kind, Name: name}
	obj := &state.Object{Kind: kind, Name: name, Spec: spec, Source: state.SourceGit}
	if old, err := f.store.GetObject(ctx, key); err == nil {
		obj.ResourceVersion, obj.Status = old.ResourceVersion, old.Status
	}
	_, err = f.store.PutObject(ctx, state.ActorGit, obj)
	require.NoError(f.t, err)
}

// run stores run n of workflow wf (on hardware hw) with the netboot
// permission allow, and makes it the workflow's latest.
func (f *fixture) run(wf, hw string, n int, st state.RunState, allow *bool) {
	f.t.Helper()
	ctx := context.Background()
	f.put(state.KindWorkflow, wf, "templateRef: t\nhardwareRef: "+hw+"\n")
	o, err := f.store.GetObject(ctx, state.ObjectKey{Kind: state.KindWorkflow, Name: wf})
	require.NoError(f.t, err)
	o.Status, _ = json.Marshal(map[string]int{"lastRun": n})
	_, err = f.store.PutObject(ctx, state.ActorReconciler, o)
	require.NoError(f.t, err)
	r := &state.WorkflowRun{Workflow: wf, Number: n, State: st, Hardware: hw, Actions: []state.RunAction{}, AllowPXE: allow}
	if old, err := f.store.GetRun(ctx, state.RunKey{Workflow: wf, Number: n}); err == nil {
		r.ResourceVersion = old.ResourceVersion
	}
	_, err = f.store.PutRun(ctx, state.ActorReconciler, r)
	require.NoError(f.t, err)
}

// get asks the server for path from remote (ip:port) with extra headers.
func (f *fixture) get(path, remote string, header ...string) (int, string, http.Header) {
	f.t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://10.0.0.1:8080"+path, nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	body, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(body), w.Result().Header
}

// netbootEvents returns the messages of the hardware's netboot events.
func (f *fixture) netbootEvents(hw string) []string {
	f.t.Helper()
	evs, err := f.store.Events(context.Background(), state.EventQuery{Filter: state.EventFilter{Kind: state.KindHardware, Name: hw, Types: []state.EventType{state.EventNetboot}}})
	require.NoError(f.t, err)
	var out []string
	for _, ev := range evs {
		require.Equal(f.t, state.Actor("boot"), ev.Actor)
		out = append(out, ev.Message)
	}
	return out
}

func ptr[T any](v T) *T { return &v }
