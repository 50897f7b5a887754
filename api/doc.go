// Package api is tink-server's REST API (httprouter): the fleet's objects,
// its event log (also as server-sent events), status, and the imperative
// overrides (ad-hoc objects, retry, cancel, sync, suspend, resume). The wire
// types and the Go client live in api/client, which the CLI and the worker
// import without pulling in the server.
//
// # Resources
//
//	GET    /v1/{hardware,templates,workflows}          list: namespace, labelSelector, limit (500, max 5000), continue
//	POST   /v1/{hardware,templates,workflows}          create (source api)
//	GET    /v1/{hardware,templates,workflows}/:name    read (namespace=)
//	PUT    /v1/{hardware,templates,workflows}/:name    update: metadata.resourceVersion required, stale -> 409
//	DELETE /v1/{hardware,templates,workflows}/:name    delete (resourceVersion= optional precondition)
//	GET    /v1/workflows/:name/events                  the workflow's events; follow=true streams until its run ends
//	POST   /v1/workflows/:name/retry                   fromStart=true starts from the first action
//	POST   /v1/workflows/:name/cancel
//	GET    /v1/workflowsets[/:name]                    workflow sets (declared in Git) with their rollout status
//	POST   /v1/workflowsets/:name/resume               resume a paused set; its failures so far are accepted
//	GET    /v1/events                                  since=SEQ, limit, kind, namespace, name, type; follow=true streams
//	GET    /v1/status                                  sync status, counts, drift
//	POST   /v1/sync, /v1/suspend, /v1/resume
//	GET    /healthz, /readyz (no token), /metrics
//
// Objects are sent as JSON or YAML in Kubernetes' shape (a template may also
// be a bare Tinkerbell template document) and validated with package
// schema; a 400 lists every problem with its field path, and line and column
// in the request body. Then the checks that need the rest of the fleet run
// against the store (crosscheck.go). Answers carry a read-only status:
// source, revision, file, times, override and drift, a workflow's latest
// run, the run on a machine.
//
// An object created here has source api, and Git never prunes it. A
// Git-managed object changes only with force=true: the change is recorded as
// an override (who, when, reason= and the spec Git declares), shown as drift
// in /v1/status, and lasts until Git changes the object again. Its labels
// and annotations stay Git's (the reconciler would undo them at the next
// sync). Deleting a Git-managed object needs force=true too, and the next
// sync re-creates it unless it is gone from Git.
//
// # Errors
//
// Every error has one shape, {"error": {"code", "message", "details"}}. The
// codes are package state's plus forbidden, too_large, unavailable and
// method_not_allowed; httpStatus maps them to statuses in one place.
// Internal errors say only that the log has the details.
//
// # Auth
//
// With Config.Auth, every route but /healthz and /readyz needs a bearer
// token from the tokens file (LoadAuthFile), and the route table
// (routes.go) says which role each route needs: viewer reads; operator also
// creates, updates, retries, cancels and syncs; admin may do everything,
// including deletions and suspend/resume; a worker token may use only
// worker routes, for the hardware it is bound to. Without Config.Auth every
// request acts as the admin "anonymous" (events name api:anonymous), which
// is why CheckListen keeps such a server on loopback unless --insecure.
// Every change is an event naming the caller (api:<token name>). Tokens are
// compared as SHA-256 hashes in constant time and never logged or echoed.
//
// A web page must not steer the fleet through a browser: state-changing
// cross-origin requests are refused (http.CrossOriginProtection), and a
// server without tokens answers on a loopback address only to requests
// addressed to localhost or a loopback IP (no DNS rebinding).
//
// # Event streams
//
// follow=true answers with text/event-stream: first an "open" message
// ({"since": N}: events after N follow), then every event as an unnamed
// message whose id is its sequence number, keep-alive comments while idle,
// and for a workflow an "end" message with the run's final state. A client
// that lost its connection resumes with since=<last id> and misses nothing
// (Store.Watch is gap-free). An "error" message says why a stream stopped
// early (retention removed events it had not sent, the workflow was deleted).
package api
