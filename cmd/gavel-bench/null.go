package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
)

// gracePeriod bounds how long a graceful stop may wait for in-flight calls.
const gracePeriod = 5 * time.Second

// nullServer allows every request without looking at it: the cost of the
// gRPC stack alone, the physical limit for any ext_authz server.
type nullServer struct {
	authv3.UnimplementedAuthorizationServer
}

// Check allocates a fresh response per call, as a real server would.
func (nullServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: 0},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}, nil
}

// serveNull listens on addr (port 0 picks a free port), prints
// "listening on ADDR" to out and serves the null Check server until ctx is
// cancelled, then stops gracefully.
func serveNull(ctx context.Context, addr string, out io.Writer) error {
	if err := checkLoopback(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// Default options, no interceptors: the same stack a real server uses.
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, nullServer{})
	if _, err := fmt.Fprintf(out, "listening on %s\n", ln.Addr()); err != nil {
		ln.Close()
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(gracePeriod):
		srv.Stop()
		<-stopped
	}
	return <-served
}
