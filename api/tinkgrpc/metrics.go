package tinkgrpc

import (
	"context"
	"log/slog"
	"path"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Metrics counts and times the agents' calls, as the API's metrics do for
// REST requests.
type Metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	log      *slog.Logger
}

// NewMetrics registers the agent call metrics with reg; log (nil:
// discard) gets a debug line per call.
func NewMetrics(reg prometheus.Registerer, log *slog.Logger) (*Metrics, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tink_agent_calls_total",
			Help: "Calls of Tinkerbell agents (gRPC WorkflowService) by method and gRPC status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tink_agent_call_duration_seconds",
			Help:    "How long a Tinkerbell agent's call took, by method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method"}),
		log: log,
	}
	for _, c := range []prometheus.Collector{m.calls, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Interceptor records every unary call.
func (m *Metrics) Interceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		method := path.Base(info.FullMethod)
		code := status.Code(err)
		m.calls.WithLabelValues(method, code.String()).Inc()
		m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
		if m.log.Enabled(ctx, slog.LevelDebug) {
			var agent string
			if r, ok := req.(interface{ GetAgentId() string }); ok {
				agent = r.GetAgentId()
			}
			m.log.Debug("agent call", "method", method, "agent", agent, "code", code.String(), "from", addrText(sourceAddr(ctx)), "duration", time.Since(start))
		}
		return resp, err
	}
}
