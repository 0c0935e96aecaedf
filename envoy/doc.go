// Package envoy is everything gavel knows about Envoy's configuration
// model, without I/O: the typed extensions its configurations use, and
// [ParseBootstrap], which reads an Envoy bootstrap (YAML or JSON) into
// go-control-plane's types and validates every message, the way Envoy's own
// config loader would reject it.
//
// It is also the pure half of gavel's control plane, shaped like Envoy
// Gateway's translator:
//
//   - [IR] (ir.go) is gavel's model of the sidecar world: services, each
//     with a listener, routes naming policy entry points, resilience
//     settings and endpoints, plus the ext_authz service. Zero values mean
//     defaults ([Defaults], [IR.WithDefaults], defaults.go, Envoy's own
//     where Envoy has one); [IR.Validate] reports every problem at once.
//   - [ParseServices] (config.go) reads a services YAML file strictly into
//     an IR, with errors that name the file, line and field.
//   - [Translate] (translate.go, listener.go, route.go, cluster.go,
//     endpoint.go) turns an IR into xDS [Resources], sorted and
//     deterministic, every message checked with ValidateAll. Listeners run
//     ext_authz (gRPC v3, fail closed with 503 unless a service opts into
//     fail_open) before the router; routes carry the policy entry point as
//     the "policy" context extension, or disable ext_authz when public;
//     clusters are EDS over ADS with circuit breakers, outlier detection,
//     health checks and the LB policy; the authz cluster is STATIC HTTP/2.
//
// Serving the resources (snapshots, ADS) is package xds's job.
package envoy
