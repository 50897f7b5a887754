package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tinkops/tinkops/api/tinkgrpc"
)

// AgentsConfig configures the gRPC front door for Tinkerbell's tink-agent
// (HookOS): Tinkerbell's WorkflowService on the API port and, optionally,
// on a listener of its own.
type AgentsConfig struct {
	// Enabled serves Tinkerbell agents; off by default because the agent
	// has no credentials.
	Enabled bool
	// AnySource serves an agent from any address, not only from one its
	// hardware declares.
	AnySource bool
	// GRPCListen is an extra address serving only gRPC, in addition to
	// the API port (TLS with the API's certificate when it has one).
	GRPCListen string
}

// agentFlags adds the agent flags to fs.
func (m *Main) agentFlags(fs *flag.FlagSet) {
	c := &m.Config.Agents
	fs.BoolVar(&c.Enabled, "tinkerbell-agents", c.Enabled, "serve Tinkerbell's tink-agent (HookOS) through its gRPC WorkflowService on the API port: an agent gets the actions of hardware that allows workflows, from an IP address that hardware declares")
	fs.BoolVar(&c.AnySource, "agent-any-source", c.AnySource, "serve a Tinkerbell agent from any source address, not only from an IP its hardware declares (behind NAT or a proxy)")
	fs.StringVar(&c.GRPCListen, "grpc-listen", c.GRPCListen, "also serve Tinkerbell's gRPC WorkflowService alone on this address (with --tinkerbell-agents)")
}

// check validates the agent flags.
func (c AgentsConfig) check() error {
	if c.GRPCListen != "" && !c.Enabled {
		return errors.New("--grpc-listen serves Tinkerbell agents: it needs --tinkerbell-agents")
	}
	return nil
}

// agents is the running gRPC front door.
type agents struct {
	svc     *tinkgrpc.Service
	metrics *tinkgrpc.Metrics
	http    *grpc.Server // behind the API's listener (h2c or TLS there)
}

// newAgents builds the service over the engine; it does no I/O. Its
// handler answers on the API port even when agents are off, so that an
// agent pointed here by mistake hears why it is not served.
func (m *Main) newAgents(reg prometheus.Registerer) (*agents, error) {
	log := m.log.With("component", "tinkerbell-agents")
	svc := tinkgrpc.New(tinkgrpc.Config{Engine: m.Engine, Store: m.Store, Enabled: m.Config.Agents.Enabled,
		AnySource: m.Config.Agents.AnySource, Log: log})
	met, err := tinkgrpc.NewMetrics(reg, log)
	if err != nil {
		return nil, fmt.Errorf("agent metrics: %w", err)
	}
	g := grpc.NewServer(grpc.UnaryInterceptor(met.Interceptor()))
	svc.Register(g)
	return &agents{svc: svc, metrics: met, http: g}, nil
}

// handler serves gRPC requests that arrive on the API's listener.
func (a *agents) handler() http.Handler { return a.http }

// serve starts the --grpc-listen listener, if any, until ctx ends.
func (m *Main) serveAgents(ctx context.Context, a *agents) error {
	c := m.Config
	context.AfterFunc(ctx, a.http.Stop)
	if c.Agents.GRPCListen == "" {
		return nil
	}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(a.metrics.Interceptor())}
	if c.TLSCert != "" {
		creds, err := credentials.NewServerTLSFromFile(c.TLSCert, c.TLSKey)
		if err != nil {
			return fmt.Errorf("--grpc-listen: %w", err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	ln, err := net.Listen("tcp", c.Agents.GRPCListen)
	if err != nil {
		return fmt.Errorf("listen on %s (--grpc-listen): %w", c.Agents.GRPCListen, err)
	}
	g := grpc.NewServer(opts...)
	a.svc.Register(g)
	m.grpcLn = ln
	context.AfterFunc(ctx, g.Stop)
	m.goRun("tinkerbell agents grpc", func() error { return g.Serve(ln) })
	return nil
}

// GRPCAddr is the --grpc-listen address (useful with port 0); empty
// without one.
func (m *Main) GRPCAddr() string {
	if m.grpcLn == nil {
		return ""
	}
	return m.grpcLn.Addr().String()
}
