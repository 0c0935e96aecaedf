package extauthz

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gavel-dev/gavel/policy"
)

// HTTPOptions configure the HTTP authorization endpoints.
type HTTPOptions struct {
	// Prefix is where the endpoints are mounted (default /authz).
	Prefix string
	// MaxBodyBytes bounds the body read for policies that inspect it
	// (default 64 KiB); a longer body is marked truncated.
	MaxBodyBytes int64
}

// The protocols of the proxies that ask over HTTP. Each has its own
// endpoint, so a client can never choose, through the headers it sends,
// which headers describe its request.
const (
	// ModeNginx is nginx auth_request: the original request in
	// X-Original-Method and X-Original-URI (set by proxy_set_header).
	ModeNginx = "nginx"
	// ModeTraefik is Traefik forwardAuth: X-Forwarded-Method, -Uri, -Host,
	// -Proto.
	ModeTraefik = "traefik"
	// ModeEnvoy is Envoy's http_service: the original method, and the
	// original path below the endpoint (path_prefix: /authz/envoy).
	ModeEnvoy = "envoy"
)

// Headers the HTTP authorization protocols use.
const (
	headerOriginalMethod = "X-Original-Method"
	headerOriginalURI    = "X-Original-Uri"
	headerFwdMethod      = "X-Forwarded-Method"
	headerFwdURI         = "X-Forwarded-Uri"
	headerFwdHost        = "X-Forwarded-Host"
	headerFwdProto       = "X-Forwarded-Proto"
	headerFwdFor         = "X-Forwarded-For"
	// HeaderPolicy names the entry point for Envoy's http_service, set with
	// authorization_request.headers_to_add (which replaces a client's).
	HeaderPolicy = "X-Gavel-Policy"
	// HeaderStatus carries the policy's own status when the protocol only
	// lets 401 and 403 through (nginx auth_request).
	HeaderStatus = "X-Gavel-Status"
	// QueryPolicy names the entry point for nginx and Traefik, in the
	// authorization URL the proxy's configuration fixes.
	QueryPolicy = "policy"
)

// HTTPHandler serves the HTTP authorization protocols, one endpoint each:
//
//	/authz/nginx?policy=ENTRY     nginx auth_request
//	/authz/traefik?policy=ENTRY   Traefik forwardAuth
//	/authz/envoy/<original path>  Envoy http_service (path_prefix /authz/envoy),
//	                              entry point in X-Gavel-Policy
//
// The entry point defaults to the server's; only entry points the bundle
// declares (or the server is configured with) may be named. 200 allows,
// with the policy's headers in the response for the proxy to pass upstream;
// a denial answers the policy's status, headers and body; an error answers
// 503 (or 400, 429, 500 by reason code). nginx's auth_request treats any
// status but 2xx, 401 and 403 as an error, so on the nginx endpoint other
// denial statuses become 403 and the policy's status travels in
// X-Gavel-Status. Every answer carries X-Gavel-Decision-Id,
// X-Gavel-Policy-Revision, X-Gavel-Reason and X-Gavel-Reason-Code. The input
// has the same shape as for gRPC checks.
func (s *Server) HTTPHandler(opts HTTPOptions) http.Handler {
	if opts.Prefix == "" {
		opts.Prefix = "/authz"
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	nginx, traefik := opts.Prefix+"/"+ModeNginx, opts.Prefix+"/"+ModeTraefik
	envoy := opts.Prefix + "/" + ModeEnvoy + "/"
	handlers := map[string]http.Handler{
		ModeNginx:   s.httpMode(ModeNginx, opts),
		ModeTraefik: s.httpMode(ModeTraefik, opts),
		ModeEnvoy:   s.httpMode(ModeEnvoy, opts),
	}
	// Matched by hand, not with a ServeMux: it would clean and redirect
	// the original paths Envoy appends ("//x", "/a/../b"), which are the
	// policy's to judge.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == nginx:
			handlers[ModeNginx].ServeHTTP(w, r)
		case p == traefik:
			handlers[ModeTraefik].ServeHTTP(w, r)
		case strings.HasPrefix(p, envoy):
			handlers[ModeEnvoy].ServeHTTP(w, r)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			msg, _ := json.Marshal(map[string]string{"error": fmt.Sprintf("no authorization endpoint at %s: use %s, %s or %s<path>", p, nginx, traefik, envoy)})
			w.Write(append(msg, '\n'))
		}
	})
}

func (s *Server) httpMode(mode string, opts HTTPOptions) http.Handler {
	prefix := opts.Prefix + "/" + ModeEnvoy
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		entry := r.URL.Query().Get(QueryPolicy)
		if mode == ModeEnvoy {
			entry = r.Header.Get(HeaderPolicy)
		}
		var a Answer
		req, err := checkRequestFromHTTP(r, mode, prefix, opts.MaxBodyBytes)
		if err != nil {
			a = s.answer(r.Context(), "http", entry, policy.Input{}, fmt.Errorf("%w: %w", ErrBadRequest, err),
				requestInfo{method: r.Method, path: r.URL.Path, start: start, headers: propagation.HeaderCarrier(r.Header)})
		} else {
			in, err := BuildInput(req, s.opts.Input)
			h := req.Attributes.Request.Http
			a = s.answer(r.Context(), "http", entry, in, err, requestInfo{id: h.Id, method: h.Method, path: h.Path, host: h.Host, start: start,
				headers: propagation.MapCarrier(h.Headers)})
		}
		writeHTTPAnswer(w, a, mode == ModeNginx)
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

// checkRequestFromHTTP rebuilds the original request, as Envoy would have
// described it in a CheckRequest, from the headers of the endpoint's
// protocol only.
func checkRequestFromHTTP(r *http.Request, mode, envoyPrefix string, maxBody int64) (*authv3.CheckRequest, error) {
	var method, uri string
	host, scheme := r.Host, "http"
	drop := map[string]bool{}
	switch mode {
	case ModeNginx:
		method, uri = r.Header.Get(headerOriginalMethod), r.Header.Get(headerOriginalURI)
		if method == "" || uri == "" {
			return nil, errors.New("nginx auth_request needs X-Original-Method and X-Original-URI (proxy_set_header)")
		}
		drop[headerOriginalMethod], drop[headerOriginalURI] = true, true
	case ModeTraefik:
		method, uri = r.Header.Get(headerFwdMethod), r.Header.Get(headerFwdURI)
		if method == "" || uri == "" {
			return nil, errors.New("Traefik forwardAuth sends X-Forwarded-Method and X-Forwarded-Uri; they are missing")
		}
		host = firstNonEmpty(r.Header.Get(headerFwdHost), host)
		scheme = firstNonEmpty(r.Header.Get(headerFwdProto), scheme)
		drop[headerFwdMethod], drop[headerFwdURI] = true, true
	case ModeEnvoy:
		method = r.Method
		uri = strings.TrimPrefix(r.URL.RequestURI(), envoyPrefix)
		if uri == "" || uri[0] == '?' {
			uri = "/" + uri
		}
		drop[HeaderPolicy] = true
	}
	if !strings.HasPrefix(uri, "/") {
		return nil, fmt.Errorf("original URI %q does not start with /", uri)
	}

	headers := make(map[string]string, len(r.Header)+4)
	for name, vals := range r.Header {
		if drop[name] {
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
		body, err = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		if int64(len(body)) > maxBody {
			body = body[:maxBody]
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
		if mode == ModeTraefik {
			ip = lastForwarded(r.Header.Get(headerFwdFor), ip)
		}
		source.Address = socketAddress(ip, uint32(p))
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

// lastForwarded is the address the proxy itself appended to
// X-Forwarded-For (earlier entries are whatever the client claimed), else
// fallback.
func lastForwarded(xff, fallback string) string {
	if i := strings.LastIndexByte(xff, ','); i >= 0 {
		xff = xff[i+1:]
	}
	if xff = strings.TrimSpace(xff); xff != "" {
		return xff
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
