package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// genConfig controls the generated request mix.
type genConfig struct {
	N        int    // lines to write
	Distinct int    // distinct requests among them (at most N)
	Seed     uint64 // same seed, same output
}

// generateMix writes cfg.N CheckRequests as JSONL. Exactly
// min(cfg.N, cfg.Distinct) distinct requests appear, each at least once;
// repeats are skewed towards a few hot requests, as in real traffic.
func generateMix(w io.Writer, cfg genConfig) error {
	if cfg.N < 1 {
		return fmt.Errorf("n must be at least 1, got %d", cfg.N)
	}
	if cfg.Distinct < 1 {
		return fmt.Errorf("distinct must be at least 1, got %d", cfg.Distinct)
	}
	k := min(cfg.N, cfg.Distinct)
	g := newGenerator(cfg.Seed)
	marshal := protojson.MarshalOptions{UseProtoNames: true}

	// Draw requests until k distinct ones exist. protojson output is
	// deliberately unstable in whitespace; compacting makes it canonical.
	lines := make([][]byte, 0, k)
	seen := make(map[string]bool, k)
	for attempts := 0; len(lines) < k; attempts++ {
		if attempts > 100*k+1000 {
			return fmt.Errorf("could not generate %d distinct requests", k)
		}
		raw, err := marshal.Marshal(g.request())
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return err
		}
		if seen[buf.String()] {
			continue
		}
		seen[buf.String()] = true
		lines = append(lines, buf.Bytes())
	}

	// Every distinct request once, then skewed repeats, then shuffle.
	order := make([]int, 0, cfg.N)
	for i := range k {
		order = append(order, i)
	}
	for len(order) < cfg.N {
		u := g.r.Float64()
		order = append(order, int(u*u*float64(k)))
	}
	g.r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })

	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# gavel-bench gen --n %d --distinct %d --seed %d\n", cfg.N, cfg.Distinct, cfg.Seed)
	for _, i := range order {
		bw.Write(lines[i])
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// genRoute is one kind of request in the mix.
type genRoute struct {
	weight int
	method string
	path   func(g *generator) string
	api    bool // carries API credentials
	admin  bool // carries a bearer token
	body   bool // may have a JSON body
}

// generator draws representative CheckRequests from small fixed
// vocabularies, so that a decision cache sees repeats.
type generator struct {
	r          *rand.Rand
	routes     []genRoute
	total      int // sum of route weights
	apiKeys    []string
	tokens     []string
	userAgents []string
	skus       []string
}

func newGenerator(seed uint64) *generator {
	g := &generator{
		r: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		apiKeys: []string{
			"gk_live_7f3a9c2e41b8",
			"gk_live_1d5e8b0a9c67",
			"gk_live_c2a4f6e8b0d1",
			"gk_test_0a1b2c3d4e5f",
			"gk_revoked_9e8d7c6b5a",
		},
		tokens: []string{
			"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhZG1pbiJ9.c2lnbmF0dXJlLWFsaWNl",
			"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IiLCJyb2xlIjoidXNlciJ9.c2lnbmF0dXJlLWJvYg",
			"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5Iiwicm9sZSI6Imd1ZXN0In0.c2lnbmF0dXJlLW1hbGxvcnk",
		},
		userAgents: []string{
			"curl/8.5.0",
			"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
			"orders-client/2.3.1 (go)",
			"kube-probe/1.30",
		},
		skus: []string{"SKU-1001", "SKU-1002", "SKU-2040", "SKU-3300", "SKU-9999"},
	}
	orderID := func(g *generator) string { return "/api/v1/orders/" + g.id() }
	g.routes = []genRoute{
		{weight: 28, method: "GET", path: orderID, api: true},
		{weight: 8, method: "GET", path: func(g *generator) string {
			return "/api/v1/orders?status=" + g.pick("open", "shipped", "cancelled") + "&limit=" + strconv.Itoa(10*(1+g.r.IntN(10)))
		}, api: true},
		{weight: 14, method: "POST", path: func(*generator) string { return "/api/v1/orders" }, api: true, body: true},
		{weight: 5, method: "PUT", path: orderID, api: true, body: true},
		{weight: 4, method: "DELETE", path: orderID, api: true},
		{weight: 10, method: "GET", path: func(g *generator) string { return "/api/v1/users/" + g.id() }, api: true},
		{weight: 5, method: "GET", path: func(g *generator) string {
			return "/admin/" + g.pick("users", "metrics", "audit?since=24h", "config")
		}, admin: true},
		{weight: 2, method: "POST", path: func(*generator) string { return "/admin/reindex" }, admin: true, body: true},
		{weight: 12, method: "GET", path: func(g *generator) string { return g.pick("/healthz", "/readyz") }},
		{weight: 4, method: "GET", path: func(g *generator) string {
			return g.pick("/", "/static/app.js", "/static/app.css", "/favicon.ico")
		}},
	}
	for _, rt := range g.routes {
		g.total += rt.weight
	}
	return g
}

func (g *generator) id() string { return strconv.Itoa(1 + g.r.IntN(9999)) }

func (g *generator) pick(s ...string) string { return s[g.r.IntN(len(s))] }

func (g *generator) chance(percent int) bool { return g.r.IntN(100) < percent }

func (g *generator) route() genRoute {
	n := g.r.IntN(g.total)
	for _, rt := range g.routes {
		if n < rt.weight {
			return rt
		}
		n -= rt.weight
	}
	return g.routes[len(g.routes)-1]
}

// request builds one CheckRequest shaped like what Envoy sends.
func (g *generator) request() *authv3.CheckRequest {
	rt := g.route()
	path := rt.path(g)
	host := "api.example.com"
	if rt.admin {
		host = "admin.example.com"
	}
	headers := map[string]string{
		":authority":        host,
		":method":           rt.method,
		":path":             path,
		":scheme":           "https",
		"user-agent":        g.pick(g.userAgents...),
		"accept":            g.pick("application/json", "*/*"),
		"x-forwarded-proto": "https",
	}
	if rt.api && g.chance(85) {
		headers["x-api-key"] = g.pick(g.apiKeys...)
	}
	if (rt.admin && g.chance(85)) || (rt.api && g.chance(20)) {
		headers["authorization"] = g.pick(g.tokens...)
	}
	httpReq := &authv3.AttributeContext_HttpRequest{
		Method:   rt.method,
		Headers:  headers,
		Path:     path,
		Host:     host,
		Scheme:   "https",
		Protocol: g.pick("HTTP/1.1", "HTTP/2"),
	}
	if rt.body && g.chance(70) {
		var body string
		if rt.admin {
			body = fmt.Sprintf(`{"index":%q,"full":%t}`, g.pick("orders", "users"), g.chance(50))
		} else {
			body = fmt.Sprintf(`{"sku":%q,"qty":%d,"note":%q}`, g.pick(g.skus...), 1+g.r.IntN(5),
				g.pick("", "gift", "express", "card 4111 1111 1111 1111"))
		}
		headers["content-type"] = "application/json"
		headers["content-length"] = strconv.Itoa(len(body))
		httpReq.Body = body
		httpReq.Size = int64(len(body))
	}
	attrs := &authv3.AttributeContext{
		Source:      peer(fmt.Sprintf("10.0.%d.%d", g.r.IntN(4), 1+g.r.IntN(254)), uint32(30000+g.r.IntN(30000))),
		Destination: peer("10.0.100.10", 8080),
		Request:     &authv3.AttributeContext_Request{Http: httpReq},
	}
	if g.chance(50) {
		// Half the routes name their entry point, as a per-route
		// context extension does; the rest use the server's default.
		attrs.ContextExtensions = map[string]string{"policy": "envoy/authz/allow"}
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func peer(ip string, port uint32) *authv3.AttributeContext_Peer {
	return &authv3.AttributeContext_Peer{Address: &corev3.Address{
		Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address:       ip,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}},
	}}
}
