package extauthz

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gavel-dev/gavel/policy"
)

// HTTPOptions configure the HTTP authorization endpoint.
type HTTPOptions struct {
	// Prefix is where the endpoint is mounted (default /authz). For
	// Envoy's http_service, set path_prefix to the same value: the rest of
	// the path is the original request's.
	Prefix string
	// MaxBodyBytes bounds the body read for policies that inspect it
	// (default 64 KiB); a longer body is marked truncated.
	MaxBodyBytes int64
}

// Headers the HTTP authorization protocols use to carry the original request.
const (
	headerOriginalMethod = "X-Original-Method" // nginx auth_request (set by proxy_set_header)
	headerOriginalURI    = "X-Original-Uri"
	headerFwdMethod      = "X-Forwarded-Method" // Traefik forwardAuth
	headerFwdURI         = "X-Forwarded-Uri"
	headerFwdHost        = "X-Forwarded-Host"
	headerFwdProto       = "X-Forwarded-Proto"
	headerFwdFor         = "X-Forwarded-For"
	// HeaderPolicy names the entry point, like the policy context extension.
	HeaderPolicy = "X-Gavel-Policy"
	// HeaderStatus carries the policy's own status when the protocol only
	// allows 401 and 403 (nginx auth_request).
	HeaderStatus = "X-Gavel-Status"
)

// HTTPHandler serves the HTTP authorization protocol of nginx
// auth_request, Traefik forwardAuth and Envoy's http_service:
//
//   - the original method and URI come from X-Original-Method and
//     X-Original-URI (nginx), X-Forwarded-Method, -Uri, -Host and -Proto
//     (Traefik), or the request itself below the prefix (Envoy);
//   - the entry point comes from X-Gavel-Policy (default envoy/authz/allow);
//   - 200 allows, with the policy's headers in the response for the proxy to
//     pass upstream; a denial answers the policy's status, headers and body;
//     an error answers 503. Under nginx (X-Original-URI present), whose
//     auth_request treats any status but 2xx, 401 and 403 as an error,
//     other denial statuses become 403 and the policy's status travels in
//     X-Gavel-Status.
//
// Every answer carries X-Gavel-Decision-Id, X-Gavel-Policy-Revision and
// X-Gavel-Reason. The input has the same shape as for gRPC checks.
func (s *Server) HTTPHandler(opts HTTPOptions) http.Handler {
	if opts.Prefix == "" {
		opts.Prefix = "/authz"
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		req, err := checkRequestFromHTTP(r, opts)
		var a Answer
		entry := r.Header.Get(HeaderPolicy)
		if err != nil {
			a = s.answer(r.Context(), "http", entry, policy.Input{}, fmt.Errorf("%w: %w", ErrBadRequest, err), requestInfo{method: r.Method, path: r.URL.Path})
		} else {
			in, err := BuildInput(req, s.opts.Input)
			h := req.Attributes.Request.Http
			a = s.answer(r.Context(), "http", entry, in, err, requestInfo{id: h.Id, method: h.Method, path: h.Path, host: h.Host})
		}
		writeHTTPAnswer(w, a, r.Header.Get(headerOriginalURI) != "")
		s.opts.Metrics.observe("http", a, time.Since(start).Seconds())
	})
}

func writeHTTPAnswer(w http.ResponseWriter, a Answer, nginx bool) {
	d := a.Decision
	h := w.Header()
	h.Set("X-Gavel-Decision-Id", d.ID)
	h.Set("X-Gavel-Policy-Revision", d.Revision)
	h.Set("X-Gavel-Reason", oneLine(a.Reason))
	h.Set("X-Gavel-Reason-Code", a.Code)
	if a.Enforced() {
		if a.Result == Allowed {
			for _, hd := range d.Headers {
				h.Add(hd.Name, hd.Value)
			}
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	status := a.Status
	for _, hd := range d.Headers {
		h.Add(hd.Name, hd.Value)
	}
	body := d.Body
	if a.Result == Errored || body == "" {
		body = errorBody(a)
		h.Set("Content-Type", "application/json")
	}
	if nginx && status != http.StatusUnauthorized && status != http.StatusForbidden {
		h.Set(HeaderStatus, strconv.Itoa(status))
		status = http.StatusForbidden
		if a.Result == Errored {
			status = http.StatusServiceUnavailable // nginx answers 500: still closed
		}
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// checkRequestFromHTTP rebuilds the original request as Envoy would have
// described it in a CheckRequest.
func checkRequestFromHTTP(r *http.Request, opts HTTPOptions) (*authv3.CheckRequest, error) {
	method := firstNonEmpty(r.Header.Get(headerOriginalMethod), r.Header.Get(headerFwdMethod), r.Method)
	uri := firstNonEmpty(r.Header.Get(headerOriginalURI), r.Header.Get(headerFwdURI))
	if uri == "" {
		uri = strings.TrimPrefix(r.URL.RequestURI(), opts.Prefix)
		if uri == "" || uri[0] != '/' {
			uri = "/" + uri
		}
	}
	if !strings.HasPrefix(uri, "/") {
		return nil, fmt.Errorf("original URI %q does not start with /", uri)
	}
	host := firstNonEmpty(r.Header.Get(headerFwdHost), r.Host)
	scheme := firstNonEmpty(r.Header.Get(headerFwdProto), "http")

	headers := make(map[string]string, len(r.Header)+4)
	for name, vals := range r.Header {
		switch name {
		case headerOriginalMethod, headerOriginalURI, HeaderPolicy:
			continue
		}
		headers[strings.ToLower(name)] = strings.Join(vals, ",")
	}
	headers[":method"] = method
	headers[":path"] = uri
	headers[":authority"] = host
	headers[":scheme"] = scheme

	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, opts.MaxBodyBytes+1))
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		if int64(len(body)) > opts.MaxBodyBytes {
			body = body[:opts.MaxBodyBytes]
			headers["x-envoy-auth-partial-body"] = "true"
		}
	}
	size := r.ContentLength
	if size < 0 {
		size = int64(len(body))
	}
	source := &authv3.AttributeContext_Peer{}
	if ip, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		p, _ := strconv.ParseUint(port, 10, 32)
		source.Address = socketAddress(firstForwarded(r.Header.Get(headerFwdFor), ip), uint32(p))
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: source,
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       r.Header.Get("X-Request-Id"),
				Method:   method,
				Headers:  headers,
				Path:     uri,
				Host:     host,
				Scheme:   scheme,
				Protocol: r.Proto,
				Size:     size,
				Body:     string(body),
			},
		},
	}}, nil
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       ip,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// firstForwarded is the client address from X-Forwarded-For, else fallback.
func firstForwarded(xff, fallback string) string {
	if xff == "" {
		return fallback
	}
	first, _, _ := strings.Cut(xff, ",")
	if first = strings.TrimSpace(first); first != "" {
		return first
	}
	return fallback
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
