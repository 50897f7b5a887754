package badger

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/tinkops/tinkops/state"
)

// Records of runs and events, written at every transition of an action
// (thousands a second under a fleet's workers), are encoded here rather
// than by encoding/json's reflection, at a fraction of its cost. The
// output is byte for byte json.Marshal's (TestRecordsMatchJSON holds it to
// that, and TestRecordFields fails when a field is added to the types
// without being added here). Whatever only encoding/json gets right (a
// string to escape, a time it refuses) is left to it.

// appendRun appends run's record as json.Marshal encodes it; ok is false
// when run has a time json.Marshal refuses (the caller then lets it say
// why).
func appendRun(b []byte, r *state.WorkflowRun) (_ []byte, ok bool) {
	e := recordEncoder{b: b, ok: true}
	e.raw(`{`)
	if r.Namespace != "" {
		e.str(`"namespace":`, r.Namespace)
		e.raw(`,`)
	}
	e.str(`"workflow":`, r.Workflow)
	e.int(`,"number":`, int64(r.Number))
	e.str(`,"state":`, string(r.State))
	e.strOmit(`,"template":`, r.Template)
	e.strOmit(`,"hardware":`, r.Hardware)
	e.strOmit(`,"revision":`, r.Revision)
	e.strsOmit(`,"machines":`, r.Machines)
	e.raw(`,"actions":`)
	if r.Actions == nil {
		e.raw(`null`)
	} else {
		e.raw(`[`)
		for i := range r.Actions {
			if i > 0 {
				e.raw(`,`)
			}
			e.action(&r.Actions[i])
		}
		e.raw(`]`)
	}
	e.int(`,"currentAction":`, int64(r.CurrentAction))
	e.intOmit(`,"globalTimeout":`, r.GlobalTimeout)
	e.timeOmit(`,"deadline":`, r.Deadline)
	e.strOmit(`,"reason":`, r.Reason)
	if r.AllowPXE != nil {
		e.raw(`,"allowPXE":`)
		e.b = strconv.AppendBool(e.b, *r.AllowPXE)
	}
	e.raw(`,"resourceVersion":`)
	e.b = strconv.AppendUint(e.b, r.ResourceVersion, 10)
	e.time(`,"createdAt":`, r.CreatedAt)
	e.time(`,"updatedAt":`, r.UpdatedAt)
	e.timeOmit(`,"startedAt":`, r.StartedAt)
	e.timeOmit(`,"finishedAt":`, r.FinishedAt)
	e.raw(`}`)
	return e.b, e.ok
}

func (e *recordEncoder) action(a *state.RunAction) {
	e.str(`{"task":`, a.Task)
	e.str(`,"name":`, a.Name)
	e.str(`,"image":`, a.Image)
	e.intOmit(`,"timeout":`, a.Timeout)
	e.strsOmit(`,"command":`, a.Command)
	if len(a.Environment) > 0 {
		e.raw(`,"environment":{`)
		for i, k := range slices.Sorted(maps.Keys(a.Environment)) {
			if i > 0 {
				e.raw(`,`)
			}
			e.str(``, k)
			e.str(`:`, a.Environment[k])
		}
		e.raw(`}`)
	}
	e.strsOmit(`,"volumes":`, a.Volumes)
	e.strOmit(`,"pid":`, a.Pid)
	e.intOmit(`,"retries":`, int64(a.Retries))
	if a.Background {
		e.raw(`,"background":true`)
	}
	e.str(`,"worker":`, a.Worker)
	e.str(`,"state":`, string(a.State))
	e.intOmit(`,"attempt":`, int64(a.Attempt))
	e.timeOmit(`,"startedAt":`, a.StartedAt)
	e.timeOmit(`,"finishedAt":`, a.FinishedAt)
	e.timeOmit(`,"deadline":`, a.Deadline)
	e.strOmit(`,"message":`, a.Message)
	e.raw(`}`)
}

// appendEvent appends ev's record as json.Marshal encodes it; ok as for
// appendRun.
func appendEvent(b []byte, ev *state.Event) (_ []byte, ok bool) {
	e := recordEncoder{b: b, ok: true}
	e.raw(`{"seq":`)
	e.b = strconv.AppendUint(e.b, ev.Seq, 10)
	e.time(`,"time":`, ev.Time)
	e.str(`,"type":`, string(ev.Type))
	e.strOmit(`,"kind":`, ev.Kind)
	e.strOmit(`,"namespace":`, ev.Namespace)
	e.strOmit(`,"name":`, ev.Name)
	e.intOmit(`,"run":`, int64(ev.Run))
	e.strOmit(`,"action":`, ev.Action)
	e.strOmit(`,"state":`, string(ev.State))
	e.intOmit(`,"attempt":`, int64(ev.Attempt))
	if ev.ResourceVersion != 0 {
		e.raw(`,"resourceVersion":`)
		e.b = strconv.AppendUint(e.b, ev.ResourceVersion, 10)
	}
	e.str(`,"message":`, ev.Message)
	e.strOmit(`,"revision":`, ev.Revision)
	e.str(`,"actor":`, string(ev.Actor))
	e.strOmit(`,"author":`, ev.Author)
	e.strOmit(`,"committer":`, ev.Committer)
	e.raw(`}`)
	return e.b, e.ok
}

// recordEncoder appends JSON to b; ok turns false on a value that only
// encoding/json may encode (or refuse).
type recordEncoder struct {
	b  []byte
	ok bool
}

func (e *recordEncoder) raw(s string) { e.b = append(e.b, s...) }

// str appends key (with its colon and any comma before it) and s as a
// JSON string. A string with anything encoding/json escapes (quotes,
// backslashes, control characters, <, > and &, and non-ASCII, which it
// checks for invalid UTF-8 and U+2028/U+2029) is encoded by it.
func (e *recordEncoder) str(key, s string) {
	e.raw(key)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			e.b = append(e.b, q...)
			return
		}
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, s...)
	e.b = append(e.b, '"')
}

func (e *recordEncoder) strOmit(key, s string) {
	if s != "" {
		e.str(key, s)
	}
}

func (e *recordEncoder) strsOmit(key string, ss []string) {
	if len(ss) == 0 {
		return
	}
	e.raw(key)
	e.raw(`[`)
	for i, s := range ss {
		if i > 0 {
			e.raw(`,`)
		}
		e.str(``, s)
	}
	e.raw(`]`)
}

func (e *recordEncoder) int(key string, n int64) {
	e.raw(key)
	e.b = strconv.AppendInt(e.b, n, 10)
}

func (e *recordEncoder) intOmit(key string, n int64) {
	if n != 0 {
		e.int(key, n)
	}
}

// time appends t as time.Time.MarshalJSON does: RFC 3339 with
// nanoseconds, refused (ok false) for a year outside [0,9999] or a zone
// offset of 24 hours or more, as it refuses them.
func (e *recordEncoder) time(key string, t time.Time) {
	e.raw(key)
	e.b = append(e.b, '"')
	n0 := len(e.b)
	e.b = t.AppendFormat(e.b, time.RFC3339Nano)
	switch s := e.b[n0:]; {
	case len(s) < len("9999-") || s[4] != '-':
		e.ok = false
	case s[len(s)-1] != 'Z':
		c := s[len(s)-len("Z07:00")]
		h := s[len(s)-len("07:00"):]
		if '0' <= c && c <= '9' || 10*(h[0]-'0')+(h[1]-'0') >= 24 {
			e.ok = false
		}
	}
	e.b = append(e.b, '"')
}

func (e *recordEncoder) timeOmit(key string, t time.Time) {
	if !t.IsZero() {
		e.time(key, t)
	}
}
