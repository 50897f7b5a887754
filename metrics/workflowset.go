package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// setCollector exports each WorkflowSet's rollout, worked out at scrape
// time with the code the API uses (reconciler.WorkflowSetStatus): a read
// of each set's workflows and their latest runs. Sets are few and a scrape
// comes every few seconds at most, so following the event log for them
// (as the inventory does for every object) would buy little.
type setCollector struct {
	store                          state.Store
	machines, paused, budget, wave *prometheus.Desc
}

func newSetCollector(store state.Store) *setCollector {
	labels := []string{"namespace", "set"}
	return &setCollector{
		store: store,
		machines: prometheus.NewDesc("tink_workflowset_machines",
			"Machines of a workflow set by the state of their latest run (NOT_STARTED: none yet).", append(labels, "state"), nil),
		paused: prometheus.NewDesc("tink_workflowset_paused",
			"1 when a workflow set is paused because more machines failed than its maxFailures.", labels, nil),
		budget: prometheus.NewDesc("tink_workflowset_failure_budget",
			"Failures a workflow set still tolerates before it pauses (negative once it passed).", labels, nil),
		wave: prometheus.NewDesc("tink_workflowset_wave",
			"The wave a workflow set's rollout is in (from 1; 0 before the first start).", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *setCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.machines
	ch <- c.paused
	ch <- c.budget
	ch <- c.wave
}

// Collect implements prometheus.Collector.
func (c *setCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := state.ObjectQuery{Kind: schema.KindWorkflowSet, Limit: 1000}
	for {
		page, err := c.store.ListObjects(ctx, q)
		if err != nil {
			return // the store is closing: no value beats a wrong one
		}
		for _, o := range page.Objects {
			st, err := reconciler.WorkflowSetStatus(ctx, c.store, o)
			if err != nil {
				continue
			}
			for _, s := range append(runStates(), "NOT_STARTED") {
				ch <- prometheus.MustNewConstMetric(c.machines, prometheus.GaugeValue, float64(st.States[string(s)]), o.Namespace, o.Name, string(s))
			}
			paused := 0.0
			if st.Paused {
				paused = 1
			}
			ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused, o.Namespace, o.Name)
			ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, float64(st.FailureBudget), o.Namespace, o.Name)
			ch <- prometheus.MustNewConstMetric(c.wave, prometheus.GaugeValue, float64(st.Wave), o.Namespace, o.Name)
		}
		if q.Continue = page.Continue; q.Continue == "" {
			return
		}
	}
}
