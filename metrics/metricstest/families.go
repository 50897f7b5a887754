// Package metricstest reads metrics as Prometheus does, for the tests of
// the packages that export them and of the server that serves them.
package metricstest

import (
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// Families are scraped metrics by name.
type Families map[string]*dto.MetricFamily

// Parse reads the text exposition format, as GET /metrics serves it.
func Parse(t testing.TB, r io.Reader) Families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	require.NoError(t, err)
	return fams
}

// Gather reads a registry without HTTP.
func Gather(t testing.TB, reg *prometheus.Registry) Families {
	t.Helper()
	list, err := reg.Gather()
	require.NoError(t, err)
	out := Families{}
	for _, f := range list {
		out[f.GetName()] = f
	}
	return out
}

// Series returns the samples of a family whose labels include labels
// (given as name, value pairs).
func (f Families) Series(name string, labels ...string) []*dto.Metric {
	var out []*dto.Metric
	fam := f[name]
	if fam == nil {
		return nil
	}
next:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// Value is the value of the one sample with labels: a gauge's or
// counter's value, a histogram's count; -1 if there is no such sample.
func (f Families) Value(name string, labels ...string) float64 {
	ms := f.Series(name, labels...)
	if len(ms) != 1 {
		return -1
	}
	m := ms[0]
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return -1
}
