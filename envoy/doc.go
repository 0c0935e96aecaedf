// Package envoy is everything gavel knows about Envoy's configuration
// model, without I/O: the typed extensions its configurations use, and
// [ParseBootstrap], which reads an Envoy bootstrap (YAML or JSON) into
// go-control-plane's types and validates every message, the way Envoy's own
// config loader would reject it.
package envoy
