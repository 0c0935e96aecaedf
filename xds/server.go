package xds

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	gcplog "github.com/envoyproxy/go-control-plane/pkg/log"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// ServerOptions configure [NewServer].
type ServerOptions struct {
	// Logger defaults to slog.Default(). go-control-plane's own messages
	// are logged at debug level (its Info level is per request).
	Logger *slog.Logger
	// Registerer receives the gavel_xds_* metrics; nil leaves them
	// unregistered.
	Registerer prometheus.Registerer
}

// Server is the xDS server: two go-control-plane snapshot caches and the
// go-control-plane server over them, with callbacks that tell the
// [Controller] which nodes connect and account for NACKs. Envoy sidecars
// are served from a cache in ADS mode (EDS and RDS answers wait until every
// name in the snapshot is requested, so updates are atomic; Envoy always
// asks for all of them). Proxyless gRPC clients ask only for the names each
// channel uses, which ADS mode would never answer once the snapshot holds
// more than one service, so they are served from a cache that answers
// whatever is asked.
type Server struct {
	cache     cache.SnapshotCache // Envoy sidecars, ADS mode
	grpcCache cache.SnapshotCache // proxyless gRPC clients
	xds       server.Server
	metrics   *metrics
	log       *slog.Logger
	nodes     atomic.Pointer[Controller] // set by NewController

	mu    sync.Mutex
	sotw  map[int64]*streamState // SotW streams by id
	delta map[int64]*streamState // delta streams by id (ids are counted apart)
	refs  map[string]int         // open streams per node id
}

// streamState is what the callbacks remember of one stream.
type streamState struct {
	node string
	// sent is the last response per type URL (SotW only).
	sent map[string]sentResponse
}

type sentResponse struct{ nonce, version string }

// NewServer makes the snapshot cache and the go-control-plane server; ctx
// bounds the server's lifetime (it closes its watches when ctx is done).
// Wire a [Controller] to it with NewController, then Register it on a
// gRPC server made with [GRPCServerOptions].
func NewServer(ctx context.Context, opts ServerOptions) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		metrics: m,
		log:     opts.Logger.With("component", "xds-server"),
		sotw:    map[int64]*streamState{},
		delta:   map[int64]*streamState{},
		refs:    map[string]int{},
	}
	s.cache = cache.NewSnapshotCache(true, cache.IDHash{}, gcpLogger(s.log))
	s.grpcCache = cache.NewSnapshotCache(false, cache.IDHash{}, gcpLogger(s.log))
	// The servers fill in the stream's node on every request before the
	// cache sees it, so each request can be classified by its node.
	mux := &cache.MuxCache{
		Classify:      func(r *cache.Request) string { return nodeKind(r.GetNode()) },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return nodeKind(r.GetNode()) },
		Caches:        map[string]cache.Cache{kindEnvoy: s.cache, kindGRPC: s.grpcCache},
	}
	s.xds = server.NewServer(ctx, mux, server.CallbackFuncs{
		StreamRequestFunc:      s.onStreamRequest,
		StreamResponseFunc:     s.onStreamResponse,
		StreamClosedFunc:       s.onStreamClosed,
		StreamDeltaRequestFunc: s.onDeltaRequest,
		DeltaStreamClosedFunc:  s.onDeltaClosed,
	})
	return s, nil
}

// Register registers ADS (state of the world and delta) and the per-type
// LDS, RDS, CDS and EDS services on g.
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, s.xds)
}

// GRPCServerOptions are the gRPC server settings go-control-plane's example
// server recommends: gRPC-Go's default stream limit is far too small for a
// control plane (every Envoy holds a long-lived stream), and keepalives
// find dead Envoys and keep idle streams through NATs and proxies.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(1_000_000),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    30 * time.Second,
			Timeout: 5 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             30 * time.Second,
			PermitWithoutStream: true,
		}),
	}
}

// connect records the node of a stream on its first request that names
// one, and makes it known to the controller.
func (s *Server) connect(st *streamState, node *core.Node) {
	if st.node != "" || node.GetId() == "" {
		return
	}
	st.node = node.GetId()
	s.refs[st.node]++
	if s.refs[st.node] == 1 {
		s.metrics.connectedNodes.Inc()
		s.log.Info("xds node connected", "node", st.node, "cluster", node.GetCluster())
	}
	if c := s.nodes.Load(); c != nil {
		c.addNode(st.node, isProxyless(node))
	}
}

// Node kinds, the keys of the server's caches.
const (
	kindEnvoy = "envoy"
	kindGRPC  = "grpc"
)

func nodeKind(node *core.Node) string {
	if isProxyless(node) {
		return kindGRPC
	}
	return kindEnvoy
}

// cacheFor is the cache that serves nodes of one kind.
func (s *Server) cacheFor(proxyless bool) cache.SnapshotCache {
	if proxyless {
		return s.grpcCache
	}
	return s.cache
}

// isProxyless reports whether the node is a proxyless gRPC client rather
// than an Envoy: gRPC's xDS clients name themselves "gRPC Go", "gRPC Java",
// "gRPC C-core" and so on in user_agent_name; Envoy says "envoy".
func isProxyless(node *core.Node) bool {
	return strings.HasPrefix(strings.ToLower(node.GetUserAgentName()), "grpc")
}

func (s *Server) disconnect(st *streamState) {
	if st == nil || st.node == "" {
		return
	}
	s.refs[st.node]--
	if s.refs[st.node] <= 0 {
		delete(s.refs, st.node)
		s.metrics.connectedNodes.Dec()
		s.log.Info("xds node disconnected", "node", st.node)
		if c := s.nodes.Load(); c != nil {
			c.nodeGone(st.node, time.Now())
		}
	}
}

func stream(m map[int64]*streamState, id int64) *streamState {
	st, ok := m[id]
	if !ok {
		st = &streamState{sent: map[string]sentResponse{}}
		m[id] = st
	}
	return st
}

// onStreamRequest handles every SotW request (ADS and per type).
//
// A NACK (error_detail set) carries, per the xDS protocol, the version the
// node last ACKed, not the version it rejected. go-control-plane's snapshot
// cache answers a request whose version_info differs from the snapshot's at
// once (pkg/cache/v3/simple.go, snapshotCache.CreateWatch: "The version is
// different, or the client is subscribed to resources not yet returned to
// it" -> cache.respond), so it would send the rejected snapshot straight
// back, the node would NACK it again, and so on, thousands of times a
// second (go-control-plane#962).
//
// This callback runs on the stream's goroutine before the server creates
// the new watch from the same *DiscoveryRequest (pkg/server/sotw/v3/ads.go
// and xds.go: OnStreamRequest, then cache.CreateWatch(req, ...)). If the
// NACK answers our last response of that type (its response_nonce is that
// response's nonce, recorded in onStreamResponse), we set its version_info
// to the rejected version. CreateWatch then sees the snapshot's version,
// and since the subscription's returned resources are the ones the
// rejected response carried (sotw streamWrapper.send sets them), it finds
// nothing new to send and opens a watch. SetSnapshot answers that watch as
// soon as the version differs (respondSOTWWatches: version !=
// watch.Request.GetVersionInfo()), that is, on the next good snapshot.
// Meanwhile the node keeps its last good configuration, as Envoy does. A
// NACK with a stale nonce is left alone: the server ignores it anyway.
//
// Delta streams need no such fix: the delta server records the versions it
// sent as the node's (delta server.go, SetReturnedResources(
// resp.GetNextVersionMap())), so a NACK finds nothing new to send.
func (s *Server) onStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := stream(s.sotw, id)
	s.connect(st, req.GetNode())
	typeURL := req.GetTypeUrl()
	if req.GetErrorDetail() == nil {
		// A version this stream was never sent (the client resumes from an
		// earlier stream, possibly of another control plane process, whose
		// counter may have reached the same number) proves nothing about
		// what the client holds: the cache would open a watch at that
		// version and never answer a snapshot that happens to carry the
		// same one. Forget it, so the client is sent the current snapshot.
		if _, sent := st.sent[typeURL]; !sent {
			req.VersionInfo = ""
		}
		return nil
	}
	rejected := ""
	if sent, ok := st.sent[typeURL]; ok && sent.nonce == req.GetResponseNonce() {
		rejected = sent.version
		req.VersionInfo = sent.version
	}
	s.nack(st.node, typeURL, rejected, req.GetResponseNonce(), req.GetErrorDetail().GetMessage())
	return nil
}

func (s *Server) nack(node, typeURL, version, nonce, detail string) {
	s.metrics.nacks.WithLabelValues(typeURL).Inc()
	s.log.Warn("xds NACK: the node rejected the configuration and keeps its last good one",
		"node", node, "type_url", typeURL, "rejected_version", version, "nonce", nonce, "error_detail", detail)
}

func (s *Server) onStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := stream(s.sotw, id)
	st.sent[resp.GetTypeUrl()] = sentResponse{nonce: resp.GetNonce(), version: resp.GetVersionInfo()}
}

func (s *Server) onStreamClosed(id int64, _ *core.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disconnect(s.sotw[id])
	delete(s.sotw, id)
}

func (s *Server) onDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := stream(s.delta, id)
	s.connect(st, req.GetNode())
	if req.GetErrorDetail() != nil {
		s.nack(st.node, req.GetTypeUrl(), "", req.GetResponseNonce(), req.GetErrorDetail().GetMessage())
	}
	return nil
}

func (s *Server) onDeltaClosed(id int64, _ *core.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disconnect(s.delta[id])
	delete(s.delta, id)
}

// gcpLogger adapts slog to go-control-plane's logger. Its Info messages
// are per request (open watch, respond), so they go to debug.
func gcpLogger(l *slog.Logger) gcplog.Logger {
	l = l.With("source", "go-control-plane")
	return gcplog.LoggerFuncs{
		DebugFunc: func(f string, a ...any) { l.Debug(fmt.Sprintf(f, a...)) },
		InfoFunc:  func(f string, a ...any) { l.Debug(fmt.Sprintf(f, a...)) },
		WarnFunc:  func(f string, a ...any) { l.Warn(fmt.Sprintf(f, a...)) },
		ErrorFunc: func(f string, a ...any) { l.Error(fmt.Sprintf(f, a...)) },
	}
}
