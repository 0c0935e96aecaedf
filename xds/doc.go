// Package xds is gavel's control plane: the registry of services and the
// ports they were given, the controller loop that turns changes into
// validated Envoy snapshots, and the go-control-plane ADS server that
// serves them to Envoy sidecars and proxyless gRPC clients.
package xds
