package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/events"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// viewerTokenFile holds the bearer token that reads the event stream (role
// viewer); like the hook token it is generated at first start, kept mode
// 0600 and published in the discovery file.
const viewerTokenFile = "viewer-token"

// viewerPrincipal is who a request with the viewer token is.
var viewerPrincipal = auth.Principal{Name: "local-viewer", Roles: []string{auth.RoleViewer}}

// eventsAPI is the live event stream: the bus decisions are published on
// and the WebSocket endpoint that streams it.
type eventsAPI struct {
	viewerToken string
	// replica names this gavel in the events it publishes.
	replica string
	stream  *events.Server
	// decisions publishes audit records on the bus as decision events.
	decisions policy.Sink
}

func newEventsAPI(dataDir string, bus store.Bus, reg prometheus.Registerer, log *slog.Logger) (*eventsAPI, error) {
	tok, err := loadOrCreateToken(filepath.Join(dataDir, viewerTokenFile))
	if err != nil {
		return nil, err
	}
	replica := replicaID()
	return &eventsAPI{
		viewerToken: tok,
		replica:     replica,
		stream:      events.Handler(events.Options{Bus: bus, Metrics: events.NewMetrics(reg), Logger: log}),
		decisions:   events.DecisionSink(bus, replica),
	}, nil
}

// handler serves GET /v1/events to the viewer token. The agent token
// (when given) is known too, so that it is refused with 403 (it lacks the
// viewer role) rather than 401.
func (e *eventsAPI) handler(agentToken string) http.Handler {
	tokens := map[string]auth.Principal{e.viewerToken: viewerPrincipal}
	if agentToken != "" {
		tokens[agentToken] = agentPrincipal
	}
	return auth.NewTokens(tokens).Require(auth.RoleViewer, e.stream)
}

// shutdown closes the stream's connections with 1001 (going away): they
// are hijacked, so http.Server.Shutdown does not.
func (e *eventsAPI) shutdown(ctx context.Context) {
	if e != nil {
		_ = e.stream.Shutdown(ctx)
	}
}

// replicaID names this gavel among the replicas that share a bus: its host
// name and process id ("host-4242"), or a random id when the host name is
// unknown.
func replicaID() string {
	if host, err := os.Hostname(); err == nil && host != "" {
		return fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// authzEventModes are the values of --authz-events.
var authzEventModes = []string{"none", "denied", "all"}

// authzEvents returns the sink that publishes ext_authz and HTTP authz
// decisions on bus as decision events (--authz-events): none, those that
// were not allowed (denials and errors: what a watcher of the stream looks
// for, and rare), or all (a busy proxy answers tens of thousands a second,
// and each is one more message through Redis to every replica). Hook, MCP
// and validation decisions always go on the stream. It returns nil for
// none.
func authzEvents(mode string, bus store.Bus) (policy.Sink, error) {
	switch mode {
	case "none":
		return nil, nil
	case "all":
		return events.DecisionSink(bus, replicaID()), nil
	case "denied":
		return notAllowed{events.DecisionSink(bus, replicaID())}, nil
	}
	return nil, fmt.Errorf("--authz-events %q: want one of %s", mode, strings.Join(authzEventModes, ", "))
}

// notAllowed passes on the decisions that were not allowed.
type notAllowed struct{ next policy.Sink }

func (n notAllowed) Record(r policy.Record) {
	if r.Outcome != "allow" {
		n.next.Record(r)
	}
}
