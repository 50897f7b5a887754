// Package tinkpb is the generated Go code of Tinkerbell's WorkflowService
// (workflow.proto): the wire contract of HookOS's tink-agent. `make proto`
// regenerates it; edit the .proto, never the generated files.
package tinkpb
