// Package deploy holds Kubernetes manifests for tink-server (see README.md).
// It has no Go code; its tests check the manifests against each other and
// against the flags the real tink-server binary has, and check the Grafana
// dashboard in ../grafana against the metric names tink-server exports.
package deploy
