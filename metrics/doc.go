// Package metrics is tink-server's Prometheus metrics beyond the API's own
// (api/metrics.go): syncs and the revision in effect, Git fetches, workflow
// actions, BMC calls, workers last seen, the event log's bounds, the
// inventory of objects and runs, and each WorkflowSet's rollout.
//
// The core packages know nothing of Prometheus: each has an optional hook
// (reconciler.Loop.OnSync, gitsource.Config.OnSync, workflow.Config.Observer,
// bmc.Config.OnCall), and Collectors is what the server plugs into them, so
// the server's main package only wires. Everything is registered on the
// server's own registry, never the global one, so two servers in one test do
// not clash.
//
// The metric names, labels and help texts are an interface: dashboards and
// alerts (examples/grafana, examples/deploy) are written against them, and
// their tests check them.
package metrics
