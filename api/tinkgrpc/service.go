// Package tinkgrpc serves Tinkerbell's WorkflowService, the gRPC protocol
// HookOS's tink-agent speaks, as one more front door of the workflow
// engine: an agent gets the same runs, events, timeouts, retries and BMC
// steps as our own worker, through the same engine calls the REST worker
// routes make. This package only translates and admits.
//
// The agent has no credentials, so the service is off unless enabled, and
// an agent is served only the actions of hardware that allows workflows
// (an interface with netboot.allowWorkflow) and, unless any source is
// allowed, only from an IP address that hardware declares
// (interfaces[].dhcp.ip.address). Every refusal is a gRPC status with a
// message saying why, and an event.
//
// Two traps of the agent shape the answers: it echoes the ids of the
// action it was given in its reports, and it exits for good when a final
// report (SUCCESS, FAILED, TIMEOUT) is answered NotFound, InvalidArgument or
// FailedPrecondition. So a report that comes late, twice or for a run that
// ended is acknowledged (with an event saying it changed nothing), and a
// refused report is answered PermissionDenied, after which the agent tries
// again.
package tinkgrpc

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/tinkgrpc/tinkpb"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Engine is the workflow engine as agents reach it: the calls the REST
// worker routes make (reconciler/workflow.Engine implements it).
type Engine interface {
	// Resolve finds the hardware an id names (name, MAC or agentID);
	// ENOTFOUND when none does.
	Resolve(ctx context.Context, id string) (*schema.Hardware, error)
	// Next hands out the machine's current action, the same one again
	// until it is reported on; nil when there is none.
	Next(ctx context.Context, id string, wait time.Duration) (*state.WorkerAction, error)
	// Report takes a report; ECONFLICT for a stale one.
	Report(ctx context.Context, id string, r state.WorkerReport) (*state.WorkflowRun, error)
}

// Config configures a Service.
type Config struct {
	Engine Engine
	// Store receives the refusal and stale-report events.
	Store state.Store
	// Enabled serves agents; off, every call is refused with Unavailable
	// and a message naming the flag that enables it.
	Enabled bool
	// AnySource serves an agent from any address, not only from one its
	// hardware declares.
	AnySource bool
	// Log receives a line per refusal; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service implements tinkpb.WorkflowServiceServer over the engine.
type Service struct {
	tinkpb.UnimplementedWorkflowServiceServer
	cfg Config

	mu      sync.Mutex
	refused map[string]time.Time                  // last refusal event per agent and reason
	attrs   map[state.ObjectKey][sha256.Size]byte // agent attributes last kept per hardware
}

var _ tinkpb.WorkflowServiceServer = (*Service)(nil)

// New returns a Service; it does no I/O.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, refused: map[string]time.Time{}, attrs: map[state.ObjectKey][sha256.Size]byte{}}
}

// Register adds the service to a gRPC server.
func (s *Service) Register(g *grpc.Server) { tinkpb.RegisterWorkflowServiceServer(g, s) }

// noTimeout is the timeout sent for an action without one: the agent
// reads 0 as "time out at once". The run's global timeout, which the
// server enforces, still applies.
const noTimeout = 7 * 24 * 3600

// refusalEvery bounds refusal events: an agent polls every few seconds and
// would otherwise fill the event log with the same refusal.
const refusalEvery = time.Minute

// GetAction returns the agent's current action: the same one again until
// the agent reports on it. NotFound when it has none.
func (s *Service) GetAction(ctx context.Context, req *tinkpb.ActionRequest) (*tinkpb.ActionResponse, error) {
	id := req.GetAgentId()
	hw, err := s.admit(ctx, "GetAction", id, state.ENOTFOUND)
	if err != nil {
		return nil, api.GRPCError(err)
	}
	s.keepAttributes(ctx, hw, id, req.GetAgentAttributes())
	a, err := s.cfg.Engine.Next(ctx, hardwareID(hw), 0)
	if err != nil {
		return nil, api.GRPCError(err)
	}
	if a == nil {
		return nil, api.GRPCError(state.Errorf(state.ENOTFOUND, "no action for hardware %s (agent %q) now; ask again later", hardwareID(hw), id))
	}
	return s.response(a, id), nil
}

// response is an assignment as the agent reads it.
func (s *Service) response(a *state.WorkerAction, agentID string) *tinkpb.ActionResponse {
	env := make([]string, 0, len(a.Environment))
	for _, k := range slices.Sorted(maps.Keys(a.Environment)) {
		env = append(env, k+"="+a.Environment[k])
	}
	timeout := int64(noTimeout)
	if a.Timeout > 0 {
		timeout = a.Timeout
		// An action handed out again has only the rest of its time: the
		// server times it out at its deadline whatever the agent thinks.
		if !a.Deadline.IsZero() {
			left := int64(math.Ceil(a.Deadline.Sub(s.cfg.Now()).Seconds()))
			timeout = min(max(left, 1), a.Timeout)
		}
	}
	wf := a.Workflow
	if a.Namespace != "" {
		wf = a.Namespace + "/" + a.Workflow
	}
	resp := &tinkpb.ActionResponse{
		WorkflowId: wf, TaskId: a.Task, AgentId: agentID, ActionId: actionID(wf, a.Run, a.Action, a.Attempt),
		Name: a.Name, Image: a.Image, Timeout: timeout, Command: a.Command, Volumes: a.Volumes, Environment: env,
		Pid: a.Pid, // older agents read pid, newer ones namespaces
	}
	if a.Pid != "" {
		resp.Namespaces = &tinkpb.Namespaces{Pid: a.Pid}
	}
	return resp
}

// actionID is the action_id the agent echoes: the workflow, then run,
// action index and attempt, which the engine needs to tell a stale report
// from a current one. The agent names its container after it, so it is
// unique on the machine: a container left by a crashed agent never blocks
// another workflow's action or a retry.
func actionID(wf string, run, action, attempt int) string {
	return fmt.Sprintf("%s/%d.%d.%d", wf, run, action, attempt)
}

// ReportActionStatus takes the state of the agent's action. A report the
// engine finds stale is acknowledged and changes nothing.
func (s *Service) ReportActionStatus(ctx context.Context, req *tinkpb.ActionStatusRequest) (*tinkpb.ActionStatusResponse, error) {
	id := req.GetAgentId()
	// A refused report must not end the agent: PermissionDenied, never
	// NotFound, for an agent that names no hardware.
	hw, err := s.admit(ctx, "ReportActionStatus", id, api.EFORBIDDEN)
	if err != nil {
		return nil, api.GRPCError(err)
	}
	rep, err := report(req)
	if err != nil {
		return nil, api.GRPCError(err)
	}
	_, err = s.cfg.Engine.Report(ctx, hardwareID(hw), rep)
	switch state.ErrorCode(err) {
	case "":
		return &tinkpb.ActionStatusResponse{}, nil
	case state.ECONFLICT, state.ENOTFOUND, state.EINVALID:
		// Late, for an ended run, for an old attempt, or for a run that is
		// gone: nothing the agent can fix, and an error would end it.
		name := req.GetActionName()
		msg := fmt.Sprintf("stale %s report from agent %q on action %s acknowledged; it changes nothing: %s",
			rep.State, id, name, state.ErrorMessage(err))
		s.event(ctx, state.Event{Type: state.EventAgent, Kind: state.KindWorkflow, Namespace: rep.Namespace, Name: rep.Workflow,
			Run: rep.Run, Action: name, Attempt: rep.Attempt, Message: msg, Actor: state.Worker(hardwareID(hw))})
		s.cfg.Log.Info("stale agent report", "agent", id, "hardware", hardwareID(hw), "workflow", rep.Workflow, "run", rep.Run, "reason", state.ErrorMessage(err))
		return &tinkpb.ActionStatusResponse{}, nil
	}
	return nil, api.GRPCError(err)
}

// report reads an agent's report into the engine's form. EINVALID for ids
// this server did not hand out or a state the engine does not take.
func report(req *tinkpb.ActionStatusRequest) (state.WorkerReport, error) {
	var rep state.WorkerReport
	switch req.GetActionState() {
	case tinkpb.StateType_STATE_RUNNING:
		rep.State = state.RunRunning
	case tinkpb.StateType_STATE_SUCCESS:
		rep.State = state.RunSuccess
	case tinkpb.StateType_STATE_FAILED:
		rep.State = state.RunFailed
	case tinkpb.StateType_STATE_TIMEOUT:
		rep.State = state.RunTimeout
	default:
		return rep, state.Errorf(state.EINVALID, "action_state must be RUNNING, SUCCESS, FAILED or TIMEOUT, not %s", req.GetActionState())
	}
	wf := req.GetWorkflowId()
	if ns, name, ok := strings.Cut(wf, "/"); ok {
		rep.Namespace, rep.Workflow = ns, name
	} else {
		rep.Workflow = wf
	}
	aid := req.GetActionId()
	i := strings.LastIndex(aid, "/")
	parts := strings.Split(aid[i+1:], ".")
	nums := make([]int, 0, 3)
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			break
		}
		nums = append(nums, n)
	}
	if rep.Workflow == "" || i < 0 || aid[:i] != wf || len(parts) != 3 || len(nums) != 3 {
		return rep, state.Errorf(state.EINVALID, "workflow_id %q and action_id %q are not ids this server handed out (want workflow and workflow/run.action.attempt)", wf, aid)
	}
	rep.Run, rep.Action, rep.Attempt = nums[0], nums[1], nums[2]
	rep.Message = req.GetMessage().GetMessage()
	if t := req.GetExecutionStart(); t.GetSeconds() > 0 {
		rep.Started = t.AsTime()
	}
	if t := req.GetExecutionStop(); t.GetSeconds() > 0 {
		rep.Finished = t.AsTime()
	}
	return rep, nil
}

// admit finds the hardware the agent names and checks that it may be
// served: the service is on, the hardware allows workflows, and the call
// comes from an address the hardware declares. unknown is the code for an
// agent that names no hardware. Each refusal is an event (at most one a
// minute per agent and reason).
func (s *Service) admit(ctx context.Context, call, id string, unknown string) (*schema.Hardware, error) {
	from := sourceAddr(ctx)
	if !s.cfg.Enabled {
		err := state.Errorf(state.EUNAVAILABLE, "this tink-server does not serve Tinkerbell agents; start it with --tinkerbell-agents")
		s.refuse(ctx, call, id, from, nil, "disabled", err)
		return nil, err
	}
	if id == "" {
		err := state.Errorf(unknown, "agent_id is empty: the agent must send its hardware's agentID or a MAC (WORKER_ID)")
		s.refuse(ctx, call, id, from, nil, "empty", err)
		return nil, err
	}
	hw, err := s.cfg.Engine.Resolve(ctx, id)
	if state.ErrorCode(err) == state.ENOTFOUND {
		err := state.Errorf(unknown, "no hardware has agentID or MAC %q", id)
		s.refuse(ctx, call, id, from, nil, "unknown", err)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if !allowsWorkflow(hw) {
		err := state.Errorf(api.EFORBIDDEN, "hardware %s does not allow workflows: no interface has netboot.allowWorkflow: true", hardwareID(hw))
		s.refuse(ctx, call, id, from, hw, "workflow", err)
		return nil, err
	}
	if !s.cfg.AnySource && !declares(hw, from) {
		err := state.Errorf(api.EFORBIDDEN, "agent %q calls from %s, which hardware %s does not declare (interfaces[].dhcp.ip.address); tink-server --agent-any-source lifts this check", id, addrText(from), hardwareID(hw))
		s.refuse(ctx, call, id, from, hw, "source", err)
		return nil, err
	}
	return hw, nil
}

// refuse records a refusal in the log and, once a minute per agent and
// reason, as an event on the hardware (or store-wide for an agent that
// names none).
func (s *Service) refuse(ctx context.Context, call, id string, from netip.Addr, hw *schema.Hardware, reason string, err error) {
	s.cfg.Log.Warn("agent refused", "call", call, "agent", id, "from", addrText(from), "err", state.ErrorMessage(err))
	key := call + "\x00" + reason + "\x00" + id + "\x00" + addrText(from)
	if reason == "disabled" {
		key = reason // a fleet of agents at a server that serves none: one event a minute says it
	}
	now := s.cfg.Now()
	s.mu.Lock()
	last, seen := s.refused[key]
	if seen && now.Sub(last) < refusalEvery {
		s.mu.Unlock()
		return
	}
	if len(s.refused) > 10_000 {
		s.refused = map[string]time.Time{}
	}
	s.refused[key] = now
	s.mu.Unlock()
	ev := state.Event{Type: state.EventAgent, Actor: state.Actor("agent:" + clip(id)),
		Message: fmt.Sprintf("%s from agent %q at %s refused: %s", call, clip(id), addrText(from), state.ErrorMessage(err))}
	if hw != nil {
		ev.Kind, ev.Namespace, ev.Name, ev.Actor = state.KindHardware, hw.Metadata.Namespace, hw.Metadata.Name, state.Worker(hardwareID(hw))
	}
	s.event(ctx, ev)
}

// event appends ev; a failure to write it is logged, not the agent's
// problem.
func (s *Service) event(ctx context.Context, ev state.Event) {
	if s.cfg.Store == nil {
		return
	}
	ev.Time = s.cfg.Now()
	if _, err := s.cfg.Store.Apply(ctx, &state.Batch{Actor: ev.Actor, Events: []state.Event{ev}}); err != nil {
		s.cfg.Log.Error("write agent event", "err", err, "message", ev.Message)
	}
}

// clip bounds what an unknown caller puts into an event.
func clip(id string) string {
	if len(id) > 64 {
		return id[:64] + "..."
	}
	return id
}

// allowsWorkflow reports whether an interface of hw has
// netboot.allowWorkflow: true.
func allowsWorkflow(hw *schema.Hardware) bool {
	for _, i := range hw.Spec.Interfaces {
		if i.Netboot != nil && i.Netboot.AllowWorkflow != nil && *i.Netboot.AllowWorkflow {
			return true
		}
	}
	return false
}

// declares reports whether one of hw's interfaces has address ip.
func declares(hw *schema.Hardware, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, i := range hw.Spec.Interfaces {
		if i.DHCP == nil || i.DHCP.IP == nil {
			continue
		}
		if a, err := netip.ParseAddr(i.DHCP.IP.Address); err == nil && a.Unmap() == ip {
			return true
		}
	}
	return false
}

// hardwareID names hw as the engine and worker tokens do: namespace/name,
// or the name alone in the default namespace.
func hardwareID(hw *schema.Hardware) string {
	return schema.Key{Namespace: hw.Metadata.Namespace, Name: hw.Metadata.Name}.String()
}

// sourceAddr is the caller's IP address; invalid when unknown.
func sourceAddr(ctx context.Context) netip.Addr {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return netip.Addr{}
	}
	if t, ok := p.Addr.(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(t.IP)
		return a.Unmap()
	}
	ap, err := netip.ParseAddrPort(p.Addr.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "an unknown address"
	}
	return a.String()
}
