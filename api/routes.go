package api

import (
	"net/http"

	"github.com/tinkops/tinkops/api/client"
)

// routeTable is every route with the role it needs: the one place where
// access is decided. Deletions and suspend/resume need admin; changes,
// retry, cancel and sync need operator; reads need viewer. Worker routes
// (a later addition) set role RoleWorker and hardwareParam.
func (s *Server) routeTable() []route {
	rs := []route{
		{method: http.MethodGet, path: "/healthz", role: RolePublic, handle: s.handleHealthz},
		{method: http.MethodGet, path: "/readyz", role: RolePublic, handle: s.handleReadyz},
		{method: http.MethodGet, path: "/metrics", role: RoleViewer, handle: s.handleMetrics},

		{method: http.MethodGet, path: "/v1/status", role: RoleViewer, handle: s.handleStatus},
		{method: http.MethodPost, path: "/v1/sync", role: RoleOperator, handle: s.handleSync},
		{method: http.MethodPost, path: "/v1/suspend", role: RoleAdmin, handle: s.handleSuspend},
		{method: http.MethodPost, path: "/v1/resume", role: RoleAdmin, handle: s.handleResume},

		{method: http.MethodGet, path: "/v1/events", role: RoleViewer, handle: s.handleEvents},
		{method: http.MethodGet, path: "/v1/backup", role: RoleAdmin, handle: s.handleBackup},
	}
	for _, k := range []*kind{s.hardwareKind(), s.templateKind(), s.workflowKind()} {
		base := "/v1/" + string(k.res)
		rs = append(rs,
			route{method: http.MethodGet, path: base, role: RoleViewer, handle: k.list},
			route{method: http.MethodPost, path: base, role: RoleOperator, handle: k.create},
			route{method: http.MethodGet, path: base + "/:name", role: RoleViewer, handle: k.get},
			route{method: http.MethodPut, path: base + "/:name", role: RoleOperator, handle: k.update},
			route{method: http.MethodDelete, path: base + "/:name", role: RoleAdmin, handle: k.delete},
		)
	}
	wf := "/v1/" + string(client.Workflows) + "/:name"
	rs = append(rs,
		route{method: http.MethodGet, path: wf + "/events", role: RoleViewer, handle: s.handleWorkflowEvents},
		route{method: http.MethodPost, path: wf + "/retry", role: RoleOperator, handle: s.handleRetry},
		route{method: http.MethodPost, path: wf + "/cancel", role: RoleOperator, handle: s.handleCancel},
		route{method: http.MethodPost, path: "/v1/hardware/:name/power", role: RoleOperator, handle: s.handlePower},
		route{method: http.MethodPost, path: "/v1/hardware/:name/bootdevice", role: RoleOperator, handle: s.handleBootDevice},
		route{method: http.MethodPost, path: "/v1/webhooks/git", role: RolePublic, handle: s.handleWebhook},
		route{method: http.MethodPost, path: "/v1/plan", role: RoleViewer, handle: s.handlePlan},
		route{method: http.MethodGet, path: "/v1/workflowsets", role: RoleViewer, handle: s.handleWorkflowSets},
		route{method: http.MethodGet, path: "/v1/workflowsets/:name", role: RoleViewer, handle: s.handleWorkflowSet},
		route{method: http.MethodPost, path: "/v1/workflowsets/:name/resume", role: RoleOperator, handle: s.handleResumeSet},
		route{method: http.MethodGet, path: "/v1/workers/:id/actions/next", role: RoleWorker, hardwareParam: "id", handle: s.handleNextAction},
		route{method: http.MethodPost, path: "/v1/workers/:id/actions/report", role: RoleWorker, hardwareParam: "id", handle: s.handleReportAction},
	)
	return rs
}
