// Package events serves gavel's live event stream: GET /v1/events, a
// WebSocket that sends each event on the bus (decisions, bundle
// activations, service registrations, circuit breaker changes) as a JSON
// text message, filtered by the query string. It also publishes decisions
// onto the bus ([DecisionSink]).
//
// A connection that cannot keep up never slows the publisher or other
// clients: when its queue or its bus subscription overflows it is closed
// with 1008 (policy violation) and the reason [CloseReasonLagged]. The
// close frame is queued behind the data already sent, so a client that
// stalled still reads it once it reads again, within WriteTimeout; a write
// that stays blocked past WriteTimeout drops the connection without one
// (the peer reads nothing, so a close frame would not reach it either).
// Pings detect dead peers; at shutdown connections close with 1001 (going
// away).
package events

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/gavel-dev/gavel/api/internal/reply"
	"github.com/gavel-dev/gavel/store"
)

// Close codes and reasons a client sees.
const (
	// CloseLagged ends a connection that fell behind.
	CloseLagged       = websocket.StatusPolicyViolation // 1008
	CloseReasonLagged = "fell behind the event stream: events were dropped; reconnect and read faster"
	// CloseShutdown ends every connection when gavel shuts down.
	CloseShutdown       = websocket.StatusGoingAway // 1001
	CloseReasonShutdown = "gavel is shutting down"
	// CloseBusError ends a connection whose bus subscription failed.
	CloseBusError       = websocket.StatusTryAgainLater // 1013
	CloseReasonBusError = "event bus unavailable; reconnect"
)

// Options configure [Handler]. Zero values mean defaults.
type Options struct {
	// Bus is where events come from (required).
	Bus store.Bus
	// Metrics default to unregistered ones.
	Metrics *Metrics
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// SendBuffer is how many events a connection may have queued before
	// it is disconnected as lagged (default 256).
	SendBuffer int
	// PingInterval is how often an idle or busy connection is pinged; a
	// pong that has not come by the next ping ends it (default 30s).
	PingInterval time.Duration
	// WriteTimeout bounds one write to a client; a write that takes longer
	// ends the connection as lagged (default 10s).
	WriteTimeout time.Duration
}

// Server is the event stream's HTTP handler. Shutdown closes its
// connections, which http.Server.Shutdown does not (they are hijacked).
type Server struct {
	opts Options

	mu       sync.Mutex
	closing  bool
	shutdown chan struct{}
	conns    map[*conn]struct{}
	wg       sync.WaitGroup
}

// Handler returns the event stream's handler. It authenticates nobody:
// mount it behind the auth middleware.
func Handler(opts Options) *Server {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SendBuffer < 1 {
		opts.SendBuffer = 256
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 30 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	return &Server{opts: opts, shutdown: make(chan struct{}), conns: map[*conn]struct{}{}}
}

// ServeHTTP checks the filter (400 naming the bad parameter), upgrades to
// a WebSocket and streams events until the client leaves, falls behind,
// or the server shuts down.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilter(r.URL.Query())
	if err != nil {
		reply.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		reply.Error(w, http.StatusServiceUnavailable, "gavel is shutting down")
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	// Subscribe before the upgrade: a client gets every event published
	// after its handshake completes.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	sub := s.opts.Bus.Subscribe(ctx)
	defer sub.Close()
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered the request
	}
	c := &conn{opts: &s.opts, shutdown: s.shutdown, ws: ws, filter: f, ended: make(chan struct{})}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.opts.Metrics.connections.Inc()
	defer func() {
		s.opts.Metrics.connections.Dec()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.serve(ctx, sub)
	s.opts.Logger.Debug("event stream client left", "remote", r.RemoteAddr, "reason", c.reason)
}

// Shutdown closes every connection with 1001 (going away), refuses new
// ones, and waits for them to end until ctx does; then it drops what is
// left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.shutdown)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			_ = c.ws.CloseNow()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
