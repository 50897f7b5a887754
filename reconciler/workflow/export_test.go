package workflow

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
