// Package xds is gavel's control plane. The port registry (package
// xds/ports) holds the instances services registered; the [Controller]
// loop merges them, as endpoints, into the base IR from the services file,
// coalesces changes with a holdoff, translates (envoy.Translate), checks
// the snapshot's consistency and publishes it for every connected node,
// keeping the last good snapshot when a change fails. The [Server] is the
// go-control-plane ADS server (state of the world and delta, plus LDS, RDS,
// CDS and EDS) over a snapshot cache; its callbacks tell the controller
// which nodes connect, count NACKs and keep a NACK from being answered with
// the rejected configuration again. [DumpJSON] renders a node's snapshot
// for the admin API.
package xds
