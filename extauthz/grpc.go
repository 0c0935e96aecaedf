package extauthz

import (
	"runtime"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// GRPCOptions configure the gRPC server around a [Server].
type GRPCOptions struct {
	// Reflection registers the gRPC reflection service (for grpcurl).
	Reflection bool
	// MaxRecvMsgSize bounds a CheckRequest (default 4 MiB, as OPA-Envoy).
	MaxRecvMsgSize int
	// StreamWorkers serve streams from a fixed pool of goroutines, whose
	// stacks are already grown, instead of a new goroutine per call
	// (default GOMAXPROCS; negative turns the pool off).
	StreamWorkers int
	// ServerOptions are appended (interceptors, stats handlers).
	ServerOptions []grpc.ServerOption
}

// NewGRPCServer builds a gRPC server serving the Authorization service and
// the standard health service. The health status of "" and of
// envoy.service.auth.v3.Authorization starts NOT_SERVING; set it to SERVING
// once a bundle is active.
func NewGRPCServer(s *Server, opts GRPCOptions) (*grpc.Server, *health.Server) {
	if opts.MaxRecvMsgSize <= 0 {
		opts.MaxRecvMsgSize = 4 << 20
	}
	if opts.StreamWorkers == 0 {
		opts.StreamWorkers = runtime.GOMAXPROCS(0)
	}
	base := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(opts.MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(1 << 16),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if opts.StreamWorkers > 0 {
		base = append(base, grpc.NumStreamWorkers(uint32(opts.StreamWorkers)))
	}
	gs := grpc.NewServer(append(base, opts.ServerOptions...)...)
	authv3.RegisterAuthorizationServer(gs, s)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	if opts.Reflection {
		reflection.Register(gs)
	}
	return gs, hs
}
