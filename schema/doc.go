// Package schema is the declared model: the Go types of the objects an
// operator keeps in Git (Hardware, Template, Workflow, WorkflowSet, Rufio
// Machine, the repository's tink.cue configuration), the CUE definitions they
// are validated against, and Load, which turns one snapshot of a repository
// (any fs.FS) into the desired Set or into an ErrorList whose every entry
// names the file, line and field at fault. It also renders templates for a
// machine (Renderer), under budgets that keep a mistaken template from
// spending unbounded time or memory. The package imports no other package of
// ours, so that everything which reads a repository (the server's reconciler,
// `tink validate` on an operator's laptop or in a pull request's CI) holds it
// to the same rules without pulling in a store, a Git client or a server; the
// dependency test at the module's root enforces that.
package schema
