package workflow

import "time"

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
