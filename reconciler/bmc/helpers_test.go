package bmc_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
	"github.com/tinkops/tinkops/reconciler/bmc"
	"github.com/tinkops/tinkops/reconciler/bmc/bmctest"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// fixture is a Controller over a real badger store and a real secrets
// directory, logging into a buffer. Its cleanup asserts that none of the
// passwords the test used appears in the store's events or in the log.
type fixture struct {
	t          *testing.T
	store      state.Store
	secretsDir string
	log        *apitest.Buffer
	ctrl       *bmc.Controller

	mu        sync.Mutex
	passwords []string
}

// newFixture builds a fixture; cfg's Store, Secrets and Log are filled in,
// and unset timings get test-sized values (2 retries, 10 ms backoff).
func newFixture(t *testing.T, cfg bmc.Config) *fixture {
	t.Helper()
	st, err := badger.Open(context.Background(), t.TempDir(), badger.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	f := &fixture{t: t, store: st, secretsDir: t.TempDir(), log: &apitest.Buffer{}}
	// Registered after the store's Close, so it runs before it.
	t.Cleanup(f.checkNoLeak)
	cfg.Store = st
	cfg.Secrets = bmc.NewSecrets(f.secretsDir)
	cfg.Log = slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Retries == 0 {
		cfg.Retries = 2
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = 10 * time.Millisecond
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	f.ctrl, err = bmc.New(cfg)
	require.NoError(t, err)
	return f
}

// secret writes a secret in the default namespace and remembers the
// password as one that must never be shown.
func (f *fixture) secret(name, user, pass string) {
	f.t.Helper()
	f.mu.Lock()
	f.passwords = append(f.passwords, pass)
	f.mu.Unlock()
	bmctest.WriteSecret(f.t, f.secretsDir, schema.SecretRef{Name: name}, user, pass, "127.0.0.1", "10.0.0.9")
}

// secret password of a simulator, remembered too.
func (f *fixture) remember(pass string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passwords = append(f.passwords, pass)
}

// noLeak asserts that err's message contains no password.
func (f *fixture) noLeak(err error) {
	f.t.Helper()
	if err == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.passwords {
		require.NotContains(f.t, err.Error(), p, "a password leaked into an error")
	}
}

// checkNoLeak asserts that no password is in any event or log line.
func (f *fixture) checkNoLeak() {
	f.t.Helper()
	evs, err := f.store.Events(context.Background(), state.EventQuery{Limit: 10000})
	require.NoError(f.t, err)
	logs := f.log.String()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(f.t, f.passwords, "the test registered no password to check")
	for _, p := range f.passwords {
		for _, ev := range evs {
			require.NotContains(f.t, ev.Message, p, "a password leaked into event %d", ev.Seq)
		}
		require.NotContains(f.t, logs, p, "a password leaked into the log")
	}
}

// events returns the bmc events about hardware name, oldest first: its
// own (overrides, polls) and those of the workflow runs whose boot actions
// ran on it (every fixture's runs are on name).
func (f *fixture) events(name string) []state.Event {
	f.t.Helper()
	evs, err := f.store.Events(context.Background(), state.EventQuery{Filter: state.EventFilter{
		Types: []state.EventType{state.EventBMC},
	}})
	require.NoError(f.t, err)
	var out []state.Event
	for _, ev := range evs {
		if ev.Kind == state.KindWorkflow || (ev.Kind == state.KindHardware && ev.Name == name) {
			out = append(out, ev)
		}
	}
	return out
}

// messages returns the messages of evs.
func messages(evs []state.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Message
	}
	return out
}

// hardware returns a Hardware named name managed by b; uefi sets an
// interface's dhcp.uefi.
func hardware(name string, b *schema.BMC, uefi bool) *schema.Hardware {
	return &schema.Hardware{
		Metadata: schema.ObjectMeta{Name: name},
		Spec: schema.HardwareSpec{
			BMC:        b,
			Interfaces: []schema.Interface{{DHCP: &schema.DHCP{MAC: "00:00:00:00:00:01", UEFI: uefi}}},
		},
	}
}

// workflow returns a workflow on hardware with the given boot options.
func workflow(hw string, bo *schema.BootOptions) *schema.Workflow {
	return &schema.Workflow{
		Metadata: schema.ObjectMeta{Name: "wf-1"},
		Spec:     schema.WorkflowSpec{TemplateRef: "t", HardwareRef: hw, BootOptions: bo},
	}
}

// run returns run 1 of workflow wf-1.
func run() *state.WorkflowRun {
	return &state.WorkflowRun{Workflow: "wf-1", Number: 1, State: state.RunPreparing, Hardware: "node-01"}
}

// indexOf returns the index of the first element of calls at or after
// from equal to want, or -1.
func indexOf(calls []string, want string, from int) int {
	for i := from; i < len(calls); i++ {
		if calls[i] == want {
			return i
		}
	}
	return -1
}

// requireOrder asserts that want appear in calls in this order (other
// calls may come in between).
func requireOrder(t *testing.T, calls []string, want ...string) {
	t.Helper()
	at := 0
	for _, w := range want {
		i := indexOf(calls, w, at)
		require.GreaterOrEqual(t, i, 0, "call %q (in order %q) missing from %q", w, want, calls)
		at = i + 1
	}
}

// sets returns the calls that change something ("set ..."), in order.
func sets(calls []string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, "set ") {
			out = append(out, c)
		}
	}
	return out
}

func removeFile(path string) error { return os.Remove(path) }
