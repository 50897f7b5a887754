package api

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the API's Prometheus metrics, registered on the server's own
// registry (never the global one, so two servers in one test never clash).
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// webhookRefused counts refused webhook requests by reason: the
	// route is open to anyone, so refusals are counted here rather than
	// written to the event log one by one.
	webhookRefused *prometheus.CounterVec
	handler        http.Handler
}

// newMetrics registers the API's metrics on reg; a nil reg gets a new
// registry with the Go runtime and process collectors.
func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tink_http_requests_total",
			Help: "API requests by route (the router's pattern) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tink_http_request_duration_seconds",
			Help:    "API request latency by route; event streams count until they end.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		webhookRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tink_webhook_refused_total",
			Help: "Webhook requests refused, by reason: signature (missing, malformed or wrong) or replay (a GitHub delivery id seen before).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.webhookRefused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, reason := range []string{refusedSignature, refusedReplay} {
		m.webhookRefused.WithLabelValues(reason) // shown at 0 before the first refusal
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	return m, nil
}

// forRoute returns the metrics of one route. Children are looked up once
// and cached: WithLabelValues hashes its labels on every call, which the hot
// path can skip.
func (m *metrics) forRoute(route string) *routeMetrics {
	return &routeMetrics{m: m, route: route, duration: m.duration.WithLabelValues(route), codes: map[int]prometheus.Counter{}}
}

// routeMetrics are one route's children of the metric vectors.
type routeMetrics struct {
	m        *metrics
	route    string
	duration prometheus.Observer

	mu    sync.RWMutex
	codes map[int]prometheus.Counter
}

// observe records one request.
func (rm *routeMetrics) observe(code int, seconds float64) {
	rm.mu.RLock()
	c, ok := rm.codes[code]
	rm.mu.RUnlock()
	if !ok {
		c = rm.m.requests.WithLabelValues(rm.route, strconv.Itoa(code))
		rm.mu.Lock()
		rm.codes[code] = c
		rm.mu.Unlock()
	}
	c.Inc()
	rm.duration.Observe(seconds)
}
