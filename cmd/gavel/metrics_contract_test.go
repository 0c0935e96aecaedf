package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// docMetric is one row of docs/metrics.md's table.
type docMetric struct {
	name, typ string
	labels    []string // sorted
	when      string   // "always", or the condition under which it is exported
}

// readMetricsDoc parses the table of docs/metrics.md:
// | `name` | type | `label`, `label` or - | meaning | exported |
func readMetricsDoc(t *testing.T) map[string]docMetric {
	t.Helper()
	src, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docMetric{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if !strings.HasPrefix(line, "| `gavel_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 5 {
			t.Fatalf("docs/metrics.md:%d: want 5 cells (metric | type | labels | meaning | exported), got %d: %s", n, len(cells), line)
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		m := docMetric{name: strings.Trim(cells[0], "`"), typ: cells[1], when: cells[4]}
		if cells[2] != "-" {
			for l := range strings.SplitSeq(cells[2], ",") {
				m.labels = append(m.labels, strings.Trim(strings.TrimSpace(l), "`"))
			}
		}
		sort.Strings(m.labels)
		if _, dup := out[m.name]; dup {
			t.Fatalf("docs/metrics.md:%d: %s listed twice", n, m.name)
		}
		if m.when == "" || len(cells[3]) < 10 {
			t.Fatalf("docs/metrics.md:%d: %s needs a meaning and when it is exported", n, m.name)
		}
		out[m.name] = m
	}
	if len(out) == 0 {
		t.Fatal("docs/metrics.md has no metrics table")
	}
	return out
}

// codeMetric is a gavel_* metric constructed in gavel's source.
type codeMetric struct {
	name, typ string
	labels    []string // sorted
	labelsOK  bool     // false when the labels are not a literal
	pos       string
}

var metricConstructors = map[string]string{
	"NewCounter": "counter", "NewCounterVec": "counter", "NewCounterFunc": "counter",
	"NewGauge": "gauge", "NewGaugeVec": "gauge", "NewGaugeFunc": "gauge",
	"NewHistogram": "histogram", "NewHistogramVec": "histogram",
	"NewSummary": "summary", "NewSummaryVec": "summary",
	"NewUntypedFunc": "untyped",
}

// codeMetrics finds every prometheus.NewX(prometheus.XOpts{Name: "gavel_..."}, labels)
// in the module's non-test Go files.
func codeMetrics(t *testing.T) map[string]codeMetric {
	t.Helper()
	root := "../.."
	fset := token.NewFileSet()
	out := map[string]codeMetric{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (n == "testdata" || n == "vendor" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" {
				return true
			}
			typ, ok := metricConstructors[sel.Sel.Name]
			if !ok {
				return true
			}
			name := optsName(call.Args[0])
			if !strings.HasPrefix(name, "gavel_") {
				return true
			}
			m := codeMetric{name: name, typ: typ, labelsOK: true, pos: fset.Position(call.Pos()).String()}
			if strings.HasSuffix(sel.Sel.Name, "Vec") {
				m.labels, m.labelsOK = stringSlice(call.Args[1])
				sort.Strings(m.labels)
			}
			if prev, dup := out[name]; dup && (prev.typ != m.typ || !slices.Equal(prev.labels, m.labels)) {
				t.Errorf("%s constructed twice, differently: %s and %s", name, prev.pos, m.pos)
			}
			out[name] = m
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// optsName is the full name of a prometheus.XOpts literal
// (Namespace_Subsystem_Name).
func optsName(e ast.Expr) string {
	if u, ok := e.(*ast.UnaryExpr); ok {
		e = u.X
	}
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return ""
	}
	parts := map[string]string{}
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		k, ok1 := kv.Key.(*ast.Ident)
		v, ok2 := kv.Value.(*ast.BasicLit)
		if ok1 && ok2 && v.Kind == token.STRING {
			parts[k.Name], _ = strconv.Unquote(v.Value)
		}
	}
	var name []string
	for _, k := range []string{"Namespace", "Subsystem", "Name"} {
		if parts[k] != "" {
			name = append(name, parts[k])
		}
	}
	return strings.Join(name, "_")
}

func stringSlice(e ast.Expr) ([]string, bool) {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, false
	}
	var out []string
	for _, el := range lit.Elts {
		v, ok := el.(*ast.BasicLit)
		if !ok || v.Kind != token.STRING {
			return nil, false
		}
		s, _ := strconv.Unquote(v.Value)
		out = append(out, s)
	}
	return out, true
}

// TestMetricsDocMatchesCode checks docs/metrics.md against the metrics
// gavel's source constructs: the same names, types and labels.
func TestMetricsDocMatchesCode(t *testing.T) {
	doc, code := readMetricsDoc(t), codeMetrics(t)
	for name, c := range code {
		d, ok := doc[name]
		switch {
		case !ok:
			t.Errorf("%s (%s) is not in docs/metrics.md", name, c.pos)
		case d.typ != c.typ:
			t.Errorf("%s: docs/metrics.md says %s, the code (%s) makes a %s", name, d.typ, c.pos, c.typ)
		case c.labelsOK && !slices.Equal(d.labels, c.labels):
			t.Errorf("%s: docs/metrics.md labels %v, the code (%s) has %v", name, d.labels, c.pos, c.labels)
		}
	}
	for name := range doc {
		if _, ok := code[name]; !ok {
			t.Errorf("docs/metrics.md lists %s, which no code constructs", name)
		}
	}
	if len(code) < 40 {
		t.Errorf("found only %d metrics in the source; has the way they are built changed?", len(code))
	}
}

// TestMetricsDocMatchesScrape runs gavel serve with the features that add
// metrics (a services file, Redis, a replica whose decisions fail), drives a
// little of every kind of traffic, and checks what /metrics exports against
// docs/metrics.md.
func TestMetricsDocMatchesScrape(t *testing.T) {
	doc := readMetricsDoc(t)
	fx := startMetricsFixture(t)
	fx.drive(t)

	scraped := map[string]*dto.MetricFamily{}
	for _, g := range fx.all() {
		for name, mf := range scrapeMetrics(t, g) {
			scraped[name] = mf
		}
	}
	for name, mf := range scraped {
		if !strings.HasPrefix(name, "gavel_") {
			if !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
				t.Errorf("%s is exported but neither a gavel_ metric nor one of the standard collectors docs/metrics.md names", name)
			}
			continue
		}
		d, ok := doc[name]
		if !ok {
			t.Errorf("%s is exported but not in docs/metrics.md", name)
			continue
		}
		if got := strings.ToLower(mf.GetType().String()); got != d.typ {
			t.Errorf("%s is exported as a %s, docs/metrics.md says %s", name, got, d.typ)
		}
		if got := familyLabels(mf); !slices.Equal(got, d.labels) {
			t.Errorf("%s is exported with labels %v, docs/metrics.md says %v", name, got, d.labels)
		}
	}
	var absent []string
	for name, d := range doc {
		if _, ok := scraped[name]; ok {
			continue
		}
		absent = append(absent, name)
		if d.when == "always" {
			t.Errorf("docs/metrics.md says %s is always exported, but it is not", name)
		}
	}
	sort.Strings(absent)
	t.Logf("%d of %d documented metrics scraped; absent (conditional): %v", len(doc)-len(absent), len(doc), absent)
}

func familyLabels(mf *dto.MetricFamily) []string {
	set := map[string]bool{}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			set[l.GetName()] = true
		}
	}
	out := make([]string, 0, len(set))
	for l := range set {
		out = append(out, l)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

func scrapeMetrics(t *testing.T, g *gavelProc) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + g.info.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// metricsFixture is two gavel serve replicas that between them export
// every metric traffic can bring out:
//   - main has a services file (xDS, a fail-open service), Redis at
//     127.0.0.1:6379 (L2 cache, event bus, breaker) and an Envoy-like
//     xDS client that NACKs;
//   - failing serves another bundle revision (the replicas disagree) whose
//     decisions all fail (errors, fail-closed hooks), with a Redis address
//     nobody answers (Redis errors, the breaker opens).
type metricsFixture struct {
	main, failing *gavelProc
	conns         []*grpc.ClientConn
}

func (fx *metricsFixture) all() []*gavelProc { return []*gavelProc{fx.main, fx.failing} }

func startMetricsFixture(t *testing.T) *metricsFixture {
	t.Helper()
	dir := t.TempDir()
	services := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(services, []byte(servicesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	mainArgs := []string{"--bundle", writeBundle(t, dir), "--services", services}
	if os.Getenv("GAVEL_SKIP_REDIS") == "1" {
		t.Log("GAVEL_SKIP_REDIS=1: main runs without Redis")
	} else if c, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second); err != nil {
		t.Fatalf("Redis at 127.0.0.1:6379 does not answer (%v): start it, or set GAVEL_SKIP_REDIS=1", err)
	} else {
		c.Close()
		mainArgs = append(mainArgs, "--redis-addr", "127.0.0.1:6379")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	noRedis := ln.Addr().String()
	ln.Close()

	fx := &metricsFixture{}
	var wg sync.WaitGroup
	wg.Go(func() { fx.main = startGavel(t, mainArgs...) })
	wg.Go(func() {
		fx.failing = startGavel(t, "--bundle", writeFailingBundle(t), "--redis-addr", noRedis)
	})
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(func() {
		for _, c := range fx.conns {
			c.Close()
		}
	})
	fx.nack(t)
	return fx
}

// writeFailingBundle writes the built-in bundle with a second, conflicting
// definition of the authorization and the agent decision: it compiles, and
// every evaluation that reaches the policy fails (an error answer, a
// fail-closed hook).
func writeFailingBundle(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "failing")
	if err := os.CopyFS(dir, os.DirFS("../../policy/builtin/bundle")); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, "_test.rego") {
			err = os.Remove(path) // the bundle's tests would fail
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, src := range map[string]string{
		"envoy/authz/conflict.rego": "package envoy.authz\n\nallow := {\"allowed\": false, \"reason\": \"conflicts with every other answer\"}\n",
		"gavel/agent/conflict.rego": "package gavel.agent\n\ndecision := {\"decision\": \"deny\", \"reason\": \"conflicts with every other decision\", \"rule_ids\": []}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, path), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// nack connects to main's xDS as an Envoy would, takes the clusters and
// rejects them. The stream stays open (a connected node) until the test
// ends.
func (fx *metricsFixture) nack(t *testing.T) {
	t.Helper()
	conn, err := grpc.NewClient(fx.main.info.XDSAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	fx.conns = append(fx.conns, conn)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "metrics-1", Cluster: "orders"}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	got := make(chan *discoveryv3.DiscoveryResponse, 1)
	go func() {
		resp, _ := stream.Recv()
		got <- resp
	}()
	var cds *discoveryv3.DiscoveryResponse
	select {
	case cds = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no CDS response")
	}
	if cds == nil {
		t.Fatal("the xDS stream ended before a CDS response")
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, ResponseNonce: cds.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: "cluster service_orders: rejected by the metrics test"}}); err != nil {
		t.Fatal(err)
	}
	go func() { // keep reading so the stream stays healthy
		for {
			if _, err := stream.Recv(); err != nil {
				return
			}
		}
	}()
	waitFor(t, 10*time.Second, "gavel to count the NACK", func() bool {
		_, ok := scrapeMetrics(t, fx.main)["gavel_xds_nacks_total"]
		return ok
	})
}

// drive sends one round of traffic to both replicas: ext_authz Checks that
// allow, deny and fail, an HTTP authorization, Claude Code hooks that are
// denied, get no opinion and are malformed.
func (fx *metricsFixture) drive(t *testing.T) {
	t.Helper()
	for _, g := range fx.all() {
		if err := driveOnce(t.Context(), g); err != nil {
			t.Fatal(err)
		}
	}
}

func driveOnce(ctx context.Context, g *gavelProc) error {
	conn, err := grpc.NewClient(g.info.AuthzAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	for _, req := range []*authv3.CheckRequest{
		checkRequest("GET", "/api/v1/orders", "k-viewer"),
		checkRequest("GET", "/api/v1/orders/7", "k-viewer"),
		checkRequest("DELETE", "/api/v1/orders/1", "k-editor"),
		checkRequest("GET", "/api/v1/orders", ""),
		{}, // no HTTP attributes: an error answer (bad_request)
	} {
		if _, err := client.Check(ctx, req); err != nil {
			return fmt.Errorf("check: %w", err)
		}
	}
	base := "http://" + g.info.HTTPAddr
	do := func(method, path, body string, header http.Header) error {
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		resp.Body.Close()
		return nil
	}
	if err := do("GET", "/authz/api/v1/orders", "", http.Header{"X-Api-Key": {"k-viewer"}}); err != nil {
		return err
	}
	hook := http.Header{"Authorization": {"Bearer " + g.info.HookToken}, "Content-Type": {"application/json"}}
	for _, body := range []string{
		hookJSON("PreToolUse", `"tool_name":"Bash","tool_input":{"command":"rm -rf ~"},"tool_use_id":"m1"`),
		hookJSON("PreToolUse", `"tool_name":"Bash","tool_input":{"command":"go test ./..."},"tool_use_id":"m2"`),
		hookJSON("UserPromptSubmit", `"prompt":"use token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"`),
		`{"hook_event_name":`, // malformed
	} {
		if err := do("POST", "/v1/hooks/claude-code", body, hook); err != nil {
			return err
		}
	}
	return nil
}

func hookJSON(event, rest string) string {
	return `{"session_id":"metrics","transcript_path":"/tmp/t.jsonl","cwd":"/tmp/project","permission_mode":"default","hook_event_name":"` + event + `",` + rest + `}`
}

// TestMetricsGrafanaDashboards checks deploy/grafana: each dashboard is JSON
// Grafana can load, names the provisioned datasource, and every panel
// queries something.
func TestMetricsGrafanaDashboards(t *testing.T) {
	ds, err := os.ReadFile("../../deploy/grafana/provisioning/datasources/prometheus.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ds), "uid: "+grafanaDatasourceUID) {
		t.Fatalf("the provisioned datasource's uid is not %s", grafanaDatasourceUID)
	}
	files, _ := filepath.Glob("../../deploy/grafana/dashboards/*.json")
	want := []string{"agents.json", "control-plane.json", "decision-path.json", "stores.json"}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if !slices.Equal(names, want) {
		t.Fatalf("dashboards %v, want %v", names, want)
	}
	uids := map[string]bool{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			d := readDashboard(t, f)
			if d.UID == "" || d.Title == "" || uids[d.UID] {
				t.Fatalf("uid %q title %q: want both, uid unique", d.UID, d.Title)
			}
			uids[d.UID] = true
			if d.SchemaVersion < 36 {
				t.Errorf("schemaVersion %d", d.SchemaVersion)
			}
			n := 0
			for _, p := range d.Panels {
				if p.Type == "row" {
					continue
				}
				n++
				if p.Datasource.UID != grafanaDatasourceUID {
					t.Errorf("panel %q: datasource %q", p.Title, p.Datasource.UID)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no targets", p.Title)
				}
				for _, tg := range p.Targets {
					if strings.TrimSpace(tg.Expr) == "" || tg.Datasource.UID != grafanaDatasourceUID {
						t.Errorf("panel %q target %s: expr %q datasource %q", p.Title, tg.RefID, tg.Expr, tg.Datasource.UID)
					}
				}
				if p.GridPos.W == 0 || p.GridPos.H == 0 {
					t.Errorf("panel %q has no size", p.Title)
				}
			}
			if n < 4 {
				t.Errorf("%d panels", n)
			}
		})
	}
}

const grafanaDatasourceUID = "gavel-prometheus"

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ W, H int } `json:"gridPos"`
		Targets []struct {
			RefID      string `json:"refId"`
			Expr       string `json:"expr"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T, path string) dashboard {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}
