package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// dashboardFile is the Grafana dashboard shipped with the examples.
var dashboardFile = filepath.Join("..", "grafana", "tinkops-dashboard.json")

// metrics are the names tink-server exports on /metrics, with their labels.
// A histogram's series add _bucket, _sum and _count to its name.
var metrics = map[string][]string{
	"tink_reconcile_duration_seconds":     {"result"},
	"tink_reconcile_total":                {"result"},
	"tink_last_applied_revision_info":     {"revision"},
	"tink_last_applied_timestamp_seconds": nil,
	"tink_git_fetch_duration_seconds":     nil,
	"tink_git_fetch_failures_total":       nil,
	"tink_objects":                        {"kind", "source"},
	"tink_workflow_runs":                  {"state"},
	"tink_action_duration_seconds":        {"template", "action", "result"},
	"tink_bmc_calls_total":                {"action", "result"},
	"tink_bmc_call_duration_seconds":      {"action"},
	"tink_worker_last_seen_seconds":       {"worker"},
	"tink_http_requests_total":            {"route", "code"},
	"tink_http_request_duration_seconds":  {"route"},
	"tink_event_log_events":               nil,
	"tink_event_log_last_seq":             nil,
	"tink_workflowset_machines":           {"namespace", "set", "state"},
	"tink_workflowset_paused":             {"namespace", "set"},
	"tink_workflowset_failure_budget":     {"namespace", "set"},
	"tink_workflowset_wave":               {"namespace", "set"},
}

// The dashboard's rows, in order.
var dashboardRows = []string{"Reconcile", "Git", "Inventory", "Workflows", "BMC", "Workers", "API", "Store"}

type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// variable is a dashboard variable; Query is a string or, for query
// variables, an object.
type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Datasource *datasource `json:"datasource"`
		Expr       string      `json:"expr"`
	} `json:"targets"`
	// Panels are a collapsed row's panels.
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// loadDashboard parses the dashboard and returns it with every panel,
// those inside collapsed rows included, rows themselves left out.
func loadDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d), "%s is not valid JSON", dashboardFile)
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			all = append(all, p)
		}
	}
	walk(d.Panels)
	return d, all
}

var (
	metricName = regexp.MustCompile(`tink_[a-z_]+`)
	// byClause is a by (...) or without (...) clause: its words are
	// labels.
	byClause = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// metricsIn returns the metric names an expression uses, histogram
// suffixes removed.
func metricsIn(expr string) []string {
	var out []string
	for _, m := range metricName.FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(m, suffix); ok {
				if _, known := metrics[base]; known {
					m = base
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// TestDashboardMetrics: every metric name the dashboard uses is one that
// tink-server exports, so a misspelt name cannot show an empty panel; and
// every exported metric is on the dashboard.
func TestDashboardMetrics(t *testing.T) {
	d, panels := loadDashboard(t)
	used := map[string]bool{}
	var exprs []string
	for _, p := range panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			exprs = append(exprs, v.Definition, string(v.Query))
		}
	}
	for _, expr := range exprs {
		for _, m := range metricsIn(expr) {
			_, ok := metrics[m]
			require.True(t, ok, "the dashboard uses %s, which tink-server does not export (in %s)", m, expr)
			used[m] = true
		}
	}
	var missing []string
	for m := range metrics {
		if !used[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "metrics no panel shows")
}

// TestDashboardLabels: every label a panel groups by is a label of a metric
// the expression uses (le for histograms), so no panel groups by a label
// that is never there.
func TestDashboardLabels(t *testing.T) {
	_, panels := loadDashboard(t)
	for _, p := range panels {
		for _, tg := range p.Targets {
			known := map[string]bool{"le": true, "instance": true, "job": true}
			for _, m := range metricsIn(tg.Expr) {
				for _, l := range metrics[m] {
					known[l] = true
				}
			}
			for _, by := range byClause.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(by[1], ",") {
					l = strings.TrimSpace(l)
					require.True(t, l == "" || known[l], "panel %q groups by %q, which its metrics do not have: %s", p.Title, l, tg.Expr)
				}
			}
		}
	}
}

// TestDashboardShape: the dashboard imports into Grafana as shipped: a
// datasource variable DS_PROMETHEUS that every panel uses, unique panel
// ids, the rows in order, balanced expressions.
func TestDashboardShape(t *testing.T) {
	d, panels := loadDashboard(t)
	require.NotEmpty(t, d.Title)
	require.NotEmpty(t, d.UID)
	require.GreaterOrEqual(t, d.SchemaVersion, 36)

	i := slices.IndexFunc(d.Templating.List, func(v variable) bool { return v.Name == "DS_PROMETHEUS" })
	require.GreaterOrEqual(t, i, 0, "no DS_PROMETHEUS variable")
	require.Equal(t, "datasource", d.Templating.List[i].Type)
	require.JSONEq(t, `"prometheus"`, string(d.Templating.List[i].Query))

	var rows []string
	ids := map[int]bool{}
	for _, p := range d.Panels {
		require.False(t, ids[p.ID], "panel id %d is used twice", p.ID)
		ids[p.ID] = true
		if p.Type == "row" {
			rows = append(rows, p.Title)
			for _, q := range p.Panels {
				require.False(t, ids[q.ID], "panel id %d is used twice", q.ID)
				ids[q.ID] = true
			}
		}
	}
	require.Equal(t, dashboardRows, rows)

	for _, p := range panels {
		require.NotEmpty(t, p.Title, "panel %d has no title", p.ID)
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		require.True(t, p.GridPos.W > 0 && p.GridPos.H > 0 && p.GridPos.X+p.GridPos.W <= 24, "panel %q: gridPos %+v", p.Title, p.GridPos)
		require.NotNil(t, p.Datasource, "panel %q has no datasource", p.Title)
		require.Equal(t, "${DS_PROMETHEUS}", p.Datasource.UID, "panel %q", p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q has an empty query", p.Title)
			if tg.Datasource != nil {
				require.Equal(t, "${DS_PROMETHEUS}", tg.Datasource.UID, "panel %q", p.Title)
			}
			require.True(t, balanced(tg.Expr), "panel %q: unbalanced brackets in %s", p.Title, tg.Expr)
		}
	}
}

// balanced reports whether the brackets of a PromQL expression pair up,
// outside quoted strings.
func balanced(expr string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	var quote rune
	for _, r := range expr {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'' || r == '`':
			quote = r
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && quote == 0
}
