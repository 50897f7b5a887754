package workflow

import (
	"time"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Waiters counts the waits registered for machines, for tests that check
// none is left behind.
func (e *Engine) Waiters() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ws := range e.waiters {
		n += len(ws)
	}
	return n
}

// NeverExpireHardware makes cached hardware last as long as the hardware's
// events say it has not changed, however old it is, so that a test sees
// which of the two keeps it fresh.
func (e *Engine) NeverExpireHardware() {
	e.macMu.Lock()
	defer e.macMu.Unlock()
	e.hwTTL = 1000 * time.Hour
}

// CachedHardware counts the machines hwCache holds.
func (e *Engine) CachedHardware() int {
	e.macMu.Lock()
	defer e.macMu.Unlock()
	return len(e.hwCache)
}

// CachedTemplate returns the parsed template the engine keeps for key and
// the resource version it was parsed at; nil when it keeps none.
func (e *Engine) CachedTemplate(key state.ObjectKey) (*schema.Template, uint64) {
	e.tmplMu.Lock()
	defer e.tmplMu.Unlock()
	c := e.templates[key]
	return c.t, c.rv
}
