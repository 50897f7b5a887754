package bmc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Defaults for Config.
const (
	DefaultCallTimeout     = 15 * time.Second
	DefaultRetries         = 3
	DefaultBackoff         = 500 * time.Millisecond
	DefaultMaxBackoff      = 8 * time.Second
	DefaultPollConcurrency = 8
	// eventTimeout bounds writing an operation's event. The event is
	// written even when the operation's context has ended (a deadline is
	// exactly the failure an operator wants to read about).
	eventTimeout = 5 * time.Second
)

// Config configures a Controller.
type Config struct {
	// Store receives one bmc event per operation; nil records none (unit
	// tests).
	Store state.Store
	// Secrets resolves connection secrets to credentials.
	Secrets *Secrets
	// Connection returns how to reach hw's BMC, nil if it has none. The
	// server resolves bmcRef Machines here; the default understands the
	// inline bmc block only and reports a bmcRef as unresolvable.
	Connection func(ctx context.Context, hw *schema.Hardware) (*schema.BMCConnection, error)
	// Dial opens Clients; the default is a bmclib Dialer with RootCAs (or
	// CACertFile) and CallTimeout.
	Dial func(ctx context.Context, conn schema.BMCConnection, creds Credentials) (Client, error)
	// RootCAs verifies Redfish certificates for the default Dial; nil
	// reads CACertFile, and without one the system roots are used.
	RootCAs *x509.CertPool
	// CACertFile is a PEM bundle of CAs for Redfish BMCs.
	CACertFile string
	// CallTimeout bounds each call to a BMC (open, one action, close).
	// Default 15 s: BMCs answer in well under a second when healthy, and
	// bmclib's own limit is a minute.
	CallTimeout time.Duration
	// Retries is how many times a failed operation is tried again; 0 means
	// the default 3 and a negative value none.
	Retries int
	// Backoff is the wait before the first retry, doubling for each further
	// one up to MaxBackoff (defaults 500 ms and 8 s). The caller's context
	// bounds the whole operation, waits included.
	Backoff time.Duration
	// MaxBackoff caps the wait between retries.
	MaxBackoff time.Duration
	// PollConcurrency bounds how many BMCs Poll reads at once (default 8):
	// a fleet poll must not open hundreds of sessions at the same moment.
	PollConcurrency int
	// Log receives one line per operation; nil discards.
	Log *slog.Logger
	// Now stamps events and statuses; nil is time.Now. Durations are
	// measured with the real clock.
	Now func() time.Time
	// OnCall, if set, is told about every operation (an override, a boot
	// action) when it has ended, retries included: what was done, in a
	// small fixed set of names ("power on", "bootdev pxe", "virtual media
	// insert"; see step.label), how long it took and whether it worked.
	// Power polls are not reported. Metrics hang here; it runs on the
	// operation's goroutine, so it must return at once.
	OnCall func(action string, took time.Duration, ok bool)
}

// Result is the outcome of a successful operation.
type Result struct {
	// Power is the power state read at the end of the operation, unknown
	// when it was not read (a reset or cycle is still in progress).
	Power Power `json:"power"`
	// Provider is the bmclib provider that answered ("ipmitool", "gofish").
	Provider string `json:"provider"`
	// Took is the operation's duration, retries and waits included.
	Took time.Duration `json:"took"`
	// Attempts counts tries: 1 when the first one worked.
	Attempts int `json:"attempts"`
}

// PowerStatus is what the server last learned about a machine's power.
type PowerStatus struct {
	// Power is the state last read; unknown if never read or if the last
	// operation left the machine in transition (cycle, reset, soft).
	Power Power `json:"power"`
	// Checked is when the BMC was last asked, successfully or not.
	Checked time.Time `json:"checked,omitzero"`
	// Error is the last failure's message, cleared by the next success.
	Error string `json:"error,omitempty"`
}

// Controller does BMC operations on hardware: overrides from the API, a
// run's boot actions for the workflow engine, and an optional power-state
// poll. It is safe for concurrent use; operations on the same machine take
// turns, because BMCs handle concurrent sessions badly.
type Controller struct {
	store           state.Store
	secrets         *Secrets
	connection      func(ctx context.Context, hw *schema.Hardware) (*schema.BMCConnection, error)
	dial            func(ctx context.Context, conn schema.BMCConnection, creds Credentials) (Client, error)
	callTimeout     time.Duration
	retries         int
	backoff         time.Duration
	maxBackoff      time.Duration
	pollConcurrency int
	log             *slog.Logger
	now             func() time.Time
	onCall          func(action string, took time.Duration, ok bool)

	mu     sync.Mutex
	status map[schema.Key]*hwStatus
	// locks serialise operations per machine: a buffered channel of one
	// is a mutex that a context can abandon. Entries are kept for the
	// life of the Controller (one per machine ever operated on).
	locks map[schema.Key]chan struct{}
}

// hwStatus is a PowerStatus plus the last known (on or off) state, which
// the poller compares against so that a cycle's "unknown" in between does
// not count as a change.
type hwStatus struct {
	PowerStatus
	known Power
}

// New returns a Controller. It fails only if CACertFile cannot be read.
func New(cfg Config) (*Controller, error) {
	c := &Controller{
		store:           cfg.Store,
		secrets:         cfg.Secrets,
		connection:      cfg.Connection,
		dial:            cfg.Dial,
		callTimeout:     cfg.CallTimeout,
		retries:         cfg.Retries,
		backoff:         cfg.Backoff,
		maxBackoff:      cfg.MaxBackoff,
		pollConcurrency: cfg.PollConcurrency,
		log:             cfg.Log,
		now:             cfg.Now,
		onCall:          cfg.OnCall,
		status:          map[schema.Key]*hwStatus{},
		locks:           map[schema.Key]chan struct{}{},
	}
	if c.callTimeout <= 0 {
		c.callTimeout = DefaultCallTimeout
	}
	switch {
	case c.retries == 0:
		c.retries = DefaultRetries
	case c.retries < 0:
		c.retries = 0
	}
	if c.backoff <= 0 {
		c.backoff = DefaultBackoff
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = DefaultMaxBackoff
	}
	if c.pollConcurrency <= 0 {
		c.pollConcurrency = DefaultPollConcurrency
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.connection == nil {
		c.connection = InlineConnection
	}
	if c.dial == nil {
		pool := cfg.RootCAs
		if pool == nil && cfg.CACertFile != "" {
			var err error
			if pool, err = LoadCACerts(cfg.CACertFile); err != nil {
				return nil, err
			}
		}
		d := &Dialer{RootCAs: pool, Timeout: c.callTimeout}
		c.dial = d.Dial
	}
	return c, nil
}

// InlineConnection is the default Config.Connection: the hardware's inline
// bmc block. A bmcRef needs the Machines of the desired set, which only
// the server has.
func InlineConnection(_ context.Context, hw *schema.Hardware) (*schema.BMCConnection, error) {
	if hw.Spec.BMC == nil && hw.Spec.BMCRef != nil {
		return nil, state.Errorf(state.EINVALID, "hardware %s: bmcRef names Machine %q, but no Machine resolver is configured", hwName(hw), hw.Spec.BMCRef.Name)
	}
	conn, ok := (&schema.Set{}).BMC(hw)
	if !ok {
		return nil, nil
	}
	return conn, nil
}

// Status returns what is known about a machine's power.
func (c *Controller) Status(namespace, name string) PowerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.status[schema.Key{Namespace: namespace, Name: name}]; s != nil {
		return s.PowerStatus
	}
	return PowerStatus{Power: PowerUnknown}
}

// Power does a power action on hw's BMC. Status only reads; on and off are
// left to bmclib, which reads the state first and changes nothing if the
// machine is already there; cycle powers on a machine that is off.
func (c *Controller) Power(ctx context.Context, hw *schema.Hardware, action PowerAction, actor state.Actor) (Result, error) {
	if _, err := ParsePowerAction(string(action)); err != nil {
		return Result{}, err
	}
	conn, err := c.bmcOf(ctx, hw, "")
	if err != nil {
		return Result{}, err
	}
	return c.run(ctx, hw, conn, actor, nil, powerStep(action))
}

// BootDevice sets hw's next boot device, once or persistently. EFI boot is
// chosen when any of the hardware's interfaces says dhcp.uefi.
func (c *Controller) BootDevice(ctx context.Context, hw *schema.Hardware, dev BootDevice, persistent bool, actor state.Actor) (Result, error) {
	if _, err := ParseBootDevice(string(dev)); err != nil {
		return Result{}, err
	}
	conn, err := c.bmcOf(ctx, hw, "")
	if err != nil {
		return Result{}, err
	}
	return c.run(ctx, hw, conn, actor, nil, step{kind: stepBoot, dev: dev, persistent: persistent, efi: uefi(hw)})
}

// bmcOf returns hw's BMC connection, or an EINVALID error saying it has
// none (and, with need, what needed one).
func (c *Controller) bmcOf(ctx context.Context, hw *schema.Hardware, need string) (*schema.BMCConnection, error) {
	if hw == nil {
		return nil, state.Errorf(state.EINVALID, "no hardware given")
	}
	conn, err := c.connection(ctx, hw)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		msg := fmt.Sprintf("hardware %s has no bmc block or bmcRef", hwName(hw))
		if need != "" {
			msg += ": " + need + " needs one"
		}
		return nil, state.Errorf(state.EINVALID, "%s", msg)
	}
	return conn, nil
}

// run does one operation (a step) with retries, then records its outcome:
// status, one event, one log line. A boot action of a workflow run (owner
// set) is an event of that run, so the run's own events tell its whole
// story (`tink workflow events`); an override or a poll is an event of the
// hardware.
func (c *Controller) run(ctx context.Context, hw *schema.Hardware, conn *schema.BMCConnection, actor state.Actor, owner *state.WorkflowRun, st step) (Result, error) {
	prefix := ""
	log := c.log
	if owner != nil {
		prefix = owner.Key().String() + ": "
		// A boot action's lines carry its run, as every line about a
		// workflow does; its action is the BMC operation.
		log = log.With("workflow", owner.Workflow, "run", owner.Number, "action", "bmc "+st.what())
	}
	what := st.what()
	if st.err != nil {
		return Result{}, state.Errorf(state.EINVALID, "hardware %s: %s: %v", hwName(hw), what, st.err)
	}
	key := hwKey(hw)
	unlock, err := c.lock(ctx, key)
	if err != nil {
		return Result{}, state.Errorf(state.EINTERNAL, "hardware %s: %s: %v while waiting for another BMC operation on it", hwName(hw), what, err)
	}
	defer unlock()

	start := time.Now()
	var (
		res     Result
		lastErr *attemptError
	)
	for attempt := 1; ; attempt++ {
		res.Attempts = attempt
		p, provider, aerr := c.attempt(ctx, conn, st.do)
		if aerr == nil {
			res.Power, res.Provider, lastErr = p, provider, nil
			break
		}
		lastErr = aerr
		log.Debug("bmc attempt failed", "hardware", hwName(hw), "operation", what, "attempt", attempt, "err", aerr.msg)
		if aerr.final || attempt > c.retries || ctx.Err() != nil {
			break
		}
		if !sleep(ctx, c.delay(attempt)) {
			break
		}
	}
	res.Took = time.Since(start)
	took := res.Took.Round(time.Millisecond)
	c.called(st, res.Took, lastErr == nil)

	if lastErr == nil {
		c.setStatus(key, res.Power, "")
		if res.Power == "" {
			res.Power = PowerUnknown // not read: the step does not touch power
		}
		msg := fmt.Sprintf("%s: ok via %s in %s", what, res.Provider, took)
		if res.Power.Known() {
			msg += fmt.Sprintf(" (power %s)", res.Power)
		}
		c.event(ctx, hw, owner, actor, prefix+msg)
		log.Info("bmc "+what, "hardware", hwName(hw), "namespace", hw.Metadata.Namespace, "provider", res.Provider,
			"power", string(res.Power), "took", took, "attempts", res.Attempts, "actor", string(actor))
		return res, nil
	}

	c.setStatus(key, "", lastErr.msg)
	var msg string
	if lastErr.final {
		msg = fmt.Sprintf("%s failed: %s", what, lastErr.msg)
	} else {
		msg = fmt.Sprintf("%s failed after %s: %s", what, plural(res.Attempts, "attempt"), lastErr.msg)
	}
	c.event(ctx, hw, owner, actor, prefix+msg)
	log.Warn("bmc "+what+" failed", "hardware", hwName(hw), "namespace", hw.Metadata.Namespace, "bmc", conn.Host,
		"took", took, "attempts", res.Attempts, "actor", string(actor), "err", lastErr.msg)
	return res, state.Errorf(lastErr.code, "hardware %s: %s", hwName(hw), msg)
}

// called reports an operation to OnCall.
func (c *Controller) called(st step, took time.Duration, ok bool) {
	if c.onCall != nil {
		c.onCall(st.label(), took, ok)
	}
}

// label names a step for OnCall. Unlike what, it leaves out the media URL
// and the options, so that metrics get a small fixed set of names; the
// power action and boot device were checked when the step was made.
func (s step) label() string {
	switch s.kind {
	case stepPower:
		return "power " + string(s.action)
	case stepBoot:
		return "bootdev " + string(s.dev)
	case stepMediaInsert:
		return "virtual media insert"
	case stepMediaEject:
		return "virtual media eject"
	}
	return "other"
}

// attemptError is a failed attempt: its message, already scrubbed of the
// password, and whether trying again could help.
type attemptError struct {
	msg   string
	code  string
	final bool
}

// attempt resolves the credentials (every time, so a rotated secret is
// used at once), dials, opens, does the step and closes, each call under
// CallTimeout.
func (c *Controller) attempt(ctx context.Context, conn *schema.BMCConnection, do func(ctx context.Context, s *session) (Power, error)) (Power, string, *attemptError) {
	creds, err := c.secrets.Resolve(conn.Secret, conn.Host)
	if err != nil {
		return PowerUnknown, "", &attemptError{msg: state.ErrorMessage(err), code: state.ErrorCode(err), final: true}
	}
	fail := func(err error) *attemptError {
		ae := &attemptError{msg: scrub(errorText(err), creds.Password), code: state.EINTERNAL}
		var se *state.Error
		if errors.As(err, &se) && se.Code != state.EINTERNAL {
			// A request the BMC can never satisfy (virtual media over
			// IPMI, an unknown protocol): retrying changes nothing.
			ae.code, ae.final = se.Code, true
		}
		return ae
	}
	cl, err := c.dial(ctx, *conn, creds)
	if err != nil {
		return PowerUnknown, "", fail(err)
	}
	s := &session{cl: cl, timeout: c.callTimeout}
	if err := s.call(ctx, cl.Open); err != nil {
		return PowerUnknown, "", fail(err)
	}
	p, err := do(ctx, s)
	// Close even when ctx has ended: a Redfish session left open counts
	// against the BMC's small session limit.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.callTimeout)
	if cerr := cl.Close(closeCtx); cerr != nil {
		c.log.Debug("bmc close failed", "bmc", conn.Host, "err", scrub(cerr.Error(), creds.Password))
	}
	cancel()
	if err != nil {
		return PowerUnknown, "", fail(err)
	}
	return p, cl.Provider(), nil
}

// errorText is an error's message; for a coded error only its message,
// since the code is reported separately.
func errorText(err error) string {
	var se *state.Error
	if errors.As(err, &se) && se == err {
		return se.Message
	}
	return err.Error()
}

// session is an open Client with the per-call deadline.
type session struct {
	cl      Client
	timeout time.Duration
}

// call runs fn under its own CallTimeout.
func (s *session) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return fn(ctx)
}

// powerState reads the power state under CallTimeout.
func (s *session) powerState(ctx context.Context) (Power, error) {
	var p Power
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		p, err = s.cl.PowerState(ctx)
		return err
	})
	return p, err
}

// delay is the wait before retry number attempt (1 for the first retry).
func (c *Controller) delay(attempt int) time.Duration {
	d := c.backoff
	for i := 1; i < attempt && d < c.maxBackoff; i++ {
		d *= 2
	}
	return min(d, c.maxBackoff)
}

// sleep waits d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// lock waits for the machine's turn.
func (c *Controller) lock(ctx context.Context, key schema.Key) (func(), error) {
	ch := c.lockChan(key)
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// tryLock takes the machine's turn if nobody has it.
func (c *Controller) tryLock(key schema.Key) (func(), bool) {
	ch := c.lockChan(key)
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, true
	default:
		return nil, false
	}
}

func (c *Controller) lockChan(key schema.Key) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.locks[key]
	if ch == nil {
		ch = make(chan struct{}, 1)
		c.locks[key] = ch
	}
	return ch
}

// setStatus records an operation's outcome: with errMsg empty, a success
// that read p, left the state unknown (PowerUnknown) or did not touch
// power (""); otherwise a failure, which keeps the last power state read.
// It returns the previous known state.
func (c *Controller) setStatus(key schema.Key, p Power, errMsg string) (prevKnown Power) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status[key]
	if s == nil {
		s = &hwStatus{PowerStatus: PowerStatus{Power: PowerUnknown}, known: PowerUnknown}
		c.status[key] = s
	}
	prevKnown = s.known
	s.Checked = c.now()
	s.Error = errMsg
	if errMsg == "" && p != "" {
		s.Power = p
		if p.Known() {
			s.known = p
		}
	}
	return prevKnown
}

// event appends one bmc event about hw, or about owner, the workflow run
// whose boot action it was. It is written on a context of its own, so that an operation that failed because its context ended still
// leaves its event.
func (c *Controller) event(ctx context.Context, hw *schema.Hardware, owner *state.WorkflowRun, actor state.Actor, msg string) {
	if c.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventTimeout)
	defer cancel()
	ev := state.Event{Time: c.now(), Type: state.EventBMC, Kind: state.KindHardware, Namespace: hw.Metadata.Namespace, Name: hw.Metadata.Name, Message: msg, Actor: actor}
	if owner != nil {
		ev.Kind, ev.Namespace, ev.Name, ev.Run = state.KindWorkflow, owner.Namespace, owner.Workflow, owner.Number
	}
	if _, err := c.store.Apply(ctx, &state.Batch{Actor: actor, Events: []state.Event{ev}}); err != nil {
		c.log.Warn("bmc: record event", "hardware", hwName(hw), "err", err)
	}
}

// scrub removes the password from a message. bmclib passes it to ipmitool
// through the environment and no known path echoes it, but a BMC or a
// future bmclib might: this is the last line of defence.
func scrub(msg, pass string) string {
	if pass == "" {
		return msg
	}
	return strings.ReplaceAll(msg, pass, redacted)
}

// hwKey is hw's namespace and name.
func hwKey(hw *schema.Hardware) schema.Key {
	return schema.Key{Namespace: hw.Metadata.Namespace, Name: hw.Metadata.Name}
}

// hwName prints hw as name or namespace/name.
func hwName(hw *schema.Hardware) string {
	return hwKey(hw).String()
}

// uefi reports whether any interface of hw boots UEFI.
func uefi(hw *schema.Hardware) bool {
	if hw == nil {
		return false
	}
	for _, i := range hw.Spec.Interfaces {
		if i.DHCP != nil && i.DHCP.UEFI {
			return true
		}
	}
	return false
}

// plural prints "1 attempt" or "3 attempts".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
