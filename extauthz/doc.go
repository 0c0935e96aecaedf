// Package extauthz is gavel's Envoy-facing hot path: an ext_authz v3 gRPC
// server and an HTTP authorization endpoint (nginx auth_request, Traefik
// forwardAuth, Envoy http_service), both answering from the policy engine
// and its decision cache.
//
// The mapping is pure and lives apart from the servers: [BuildInput] turns a
// CheckRequest into the OPA-Envoy input document, exactly as
// opa-envoy-plugin builds it, so an OPA-Envoy policy runs unchanged;
// [BuildResponse] turns a decision (or an error) into a CheckResponse. The
// servers fail closed: an engine error, a timeout or a missing bundle is a
// deny carried in a normal response, never a gRPC error that Envoy could be
// configured to fail open on.
package extauthz
