// Package deploy holds gavel's deployment files: the container image
// (../Dockerfile), a compose setup with Envoy, PostgreSQL, Redis and
// Prometheus (compose/), Kubernetes manifests with the Envoy sidecar
// (k8s/), systemd units (systemd/), Envoy, nginx, Prometheus and Grafana
// configurations. It has no code: its tests check that the files parse
// with the tools that read them and agree with each other and with the
// Envoy configuration gavel generates.
package deploy
