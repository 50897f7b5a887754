package schema

import (
	"fmt"
	"sync/atomic"
)

// renderCache keeps the rendering of each workflow's template from the last
// Load, so that a commit changing one file renders only the workflows that
// depend on it. A rendering depends on the template's text (and, for its
// error positions, the template's file and lines), on the hardware (all of
// .Hardware and .hardware, with the repository defaults) and on the
// workflow's hardwareMap; the entry is keyed by the Identity of all three,
// and an Identity changes whenever any of that does. The one set-wide input,
// whether each task's worker is the MAC of some declared hardware, is
// checked again on every Load from the rendering's worker list (see
// rendering.finish), so adding or removing hardware elsewhere is seen.
//
// Each full Load builds the next map from the renderings it used, so the
// cache holds one entry per workflow and forgets the rest (an incremental
// Load keeps its renderings in its remembered state and leaves the map
// as it was; see loadIncremental); a published map is never written
// again, so a Load reads it without a lock.
type renderCache struct {
	entries latest[map[renderKey]*rendering]
	// executed counts templates executed (cache misses), for tests.
	executed atomic.Int64
}

// renderKey names a rendering by its inputs.
type renderKey struct {
	workflow, template, hardware Identity
}

func keyFor(w *Workflow, t *Template, hw *Hardware) (renderKey, bool) {
	k := renderKey{IdentityOf(w), IdentityOf(t), IdentityOf(hw)}
	return k, !k.workflow.IsZero() && !k.template.IsZero() && !k.hardware.IsZero()
}

// current returns the published map; the caller must not write to it.
func (c *renderCache) current() map[renderKey]*rendering {
	return c.entries.get()
}

// publish replaces the map with the renderings of the latest Load.
func (c *renderCache) publish(m map[renderKey]*rendering) {
	c.entries.set(m)
}

// rendering is a template rendered for one workflow and checked, except
// for the worker check that depends on the whole set. It is shared between
// Loads and never modified.
type rendering struct {
	doc  *TemplateDocument // nil if it did not render or decode
	errs ErrorList
	// workers are the tasks' non-empty workers, with where to report one
	// that is not a declared hardware's MAC.
	workers []workerSpot
}

type workerSpot struct {
	mac  string
	pos  Pos
	path string
}

// finish completes the checks with the set's MACs (nil: no worker check)
// and returns the document, or nil and every error. The errors are copies:
// callers set their Object.
func (r *rendering) finish(macs map[string]*Hardware) (*TemplateDocument, ErrorList) {
	var list ErrorList
	for _, e := range r.errs {
		c := *e
		c.Message = shortenQuotes(c.Message)
		list = append(list, &c)
	}
	if macs != nil {
		for _, w := range r.workers {
			if macs[w.mac] == nil {
				list = append(list, &Error{Pos: w.pos, Path: w.path, Message: fmt.Sprintf("worker %q is not the MAC address of any declared hardware", w.mac)})
			}
		}
	}
	if len(list) > 0 || r.doc == nil {
		return nil, list
	}
	return r.doc, nil
}
