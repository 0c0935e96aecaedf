package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestPrometheusRulesAndDashboards runs Prometheus (Debian's package)
// against two gavel replicas under a little load, with
// deploy/prometheus/rules loaded, and evaluates every recording rule, every
// alert and every Grafana panel query through its HTTP API:
//   - recording rules and panel queries must return data;
//   - an alert expression must be valid (it is evaluated whole; firing is
//     promtool test rules' job), and each metric it selects must return
//     data;
//   - every metric a query names must be one gavel exports (or a series a
//     recording rule makes, or Prometheus's own up).
//
// It skips when prometheus is not installed, unless GAVEL_REQUIRE_PROMETHEUS
// is set (as CI does).
func TestPrometheusRulesAndDashboards(t *testing.T) {
	bin := prometheusBinary(t)
	fx := startMetricsFixture(t)
	fx.drive(t)
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() { // a little load for as long as Prometheus scrapes
		defer close(loadDone)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, g := range fx.all() {
					_ = driveOnce(t.Context(), g)
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-loadDone })

	exported := map[string]bool{"up": true}
	for _, g := range fx.all() {
		for name, mf := range scrapeMetrics(t, g) {
			exported[name] = true
			if mf.GetType().String() == "HISTOGRAM" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					exported[name+s] = true
				}
			}
		}
	}

	rulesPath, err := filepath.Abs("../../deploy/prometheus/rules/gavel.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules := readRules(t, rulesPath)
	for _, r := range rules {
		if r.Record != "" {
			exported[r.Record] = true
		}
	}
	prom := startPrometheus(t, bin, rulesPath, fx.main.info.HTTPAddr, fx.failing.info.HTTPAddr)

	// Every target is up and has been scraped a few times, so rate() over
	// a minute has points, and the rules have been evaluated.
	waitFor(t, 30*time.Second, "Prometheus to scrape both replicas 4 times", func() bool {
		v := prom.query(t, `count_over_time(gavel_build_info[1m]) >= 4`)
		return v.ok() && len(v.Data.Result) == 2
	})
	waitFor(t, 15*time.Second, "the recording rules to produce series", func() bool {
		v := prom.query(t, `count({__name__=~"gavel:.+"}) > 0`)
		return v.ok() && len(v.Data.Result) == 1
	})
	prom.checkRulesHealthy(t)

	checkNames := func(t *testing.T, expr string) []string {
		t.Helper()
		names := promqlMetricNames(expr)
		if len(names) == 0 {
			t.Errorf("found no metric in %q", expr)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("%q refers to %s, which gavel does not export", expr, n)
			}
		}
		return names
	}
	nonEmpty := func(t *testing.T, expr string) {
		t.Helper()
		v := prom.query(t, expr)
		if !v.ok() {
			t.Errorf("%q: %s: %s", expr, v.ErrorType, v.Error)
		} else if len(v.Data.Result) == 0 {
			t.Errorf("%q returns no data", expr)
		}
	}

	for _, r := range rules {
		switch {
		case r.Record != "":
			t.Run("record/"+r.Record, func(t *testing.T) {
				checkNames(t, r.Expr)
				nonEmpty(t, r.Expr)
				nonEmpty(t, r.Record)
			})
		case r.Alert != "":
			t.Run("alert/"+r.Alert, func(t *testing.T) {
				for _, n := range checkNames(t, r.Expr) {
					nonEmpty(t, n)
				}
				if v := prom.query(t, r.Expr); !v.ok() {
					t.Errorf("%q: %s: %s", r.Expr, v.ErrorType, v.Error)
				}
			})
		}
	}
	files, _ := filepath.Glob("../../deploy/grafana/dashboards/*.json")
	for _, f := range files {
		d := readDashboard(t, f)
		for _, v := range d.Templating.List {
			t.Run(filepath.Base(f)+"/$"+v.Name, func(t *testing.T) {
				m := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`).FindStringSubmatch(v.Definition)
				if m == nil {
					t.Fatalf("variable %s: %q is not label_values(metric, label)", v.Name, v.Definition)
				}
				checkNames(t, m[1])
				nonEmpty(t, m[1])
			})
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				t.Run(filepath.Base(f)+"/"+p.Title+"/"+tg.RefID, func(t *testing.T) {
					expr := grafanaVars.Replace(tg.Expr)
					if strings.Contains(expr, "$") {
						t.Fatalf("unknown template variable in %q", tg.Expr)
					}
					checkNames(t, expr)
					nonEmpty(t, expr)
				})
			}
		}
	}
}

// grafanaVars stands in for Grafana's template variables.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "$__interval", "1m", "$__range", "1m",
	"${instance}", ".*", "$instance", ".*",
)

func prometheusBinary(t *testing.T) string {
	t.Helper()
	if bin, err := exec.LookPath("prometheus"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	if os.Getenv("GAVEL_REQUIRE_PROMETHEUS") != "" {
		t.Fatal("prometheus is required (GAVEL_REQUIRE_PROMETHEUS is set) but not installed")
	}
	t.Skip("prometheus not installed (apt-get install prometheus)")
	return ""
}

type promRule struct {
	Record string `yaml:"record"`
	Alert  string `yaml:"alert"`
	Expr   string `yaml:"expr"`
}

func readRules(t *testing.T, path string) []promRule {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []promRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(src, &f); err != nil {
		t.Fatal(err)
	}
	var out []promRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rules", path)
	}
	return out
}

type promServer struct{ base string }

// startPrometheus runs Prometheus scraping targets every second and
// evaluating rulesPath every second; it is killed when the test ends.
func startPrometheus(t *testing.T, bin, rulesPath string, targets ...string) *promServer {
	t.Helper()
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, a := range targets {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: gavel
    static_configs:
      - targets: [%s]
`, rulesPath, strings.Join(quoted, ", "))
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file="+confPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	p := &promServer{base: "http://" + addr}
	waitFor(t, 20*time.Second, "Prometheus to be ready", func() bool {
		resp, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

type promResult struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	} `json:"data"`
}

func (r promResult) ok() bool { return r.Status == "success" }

// query runs an instant query; an invalid query is a result with an error,
// not a test failure.
func (p *promServer) query(t *testing.T, expr string) promResult {
	t.Helper()
	resp, err := http.PostForm(p.base+"/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r promResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("query %q: %v", expr, err)
	}
	return r
}

// checkRulesHealthy fails the test for a rule Prometheus could not
// evaluate.
func (p *promServer) checkRulesHealthy(t *testing.T) {
	t.Helper()
	resp, err := http.Get(p.base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			n++
			if rule.Health != "ok" {
				t.Errorf("rule %s/%s: health %q %s", g.Name, rule.Name, rule.Health, rule.LastError)
			}
		}
	}
	if n == 0 {
		t.Error("Prometheus loaded no rules")
	}
}

// promqlKeywords are the identifiers of PromQL that are not metric names:
// operators and aggregations (functions are told apart by the "(" after
// them).
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "atan2": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
}

// promqlLabelLists are the keywords followed by a list of label names.
var promqlLabelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promqlMetricNames lists the metric names a PromQL expression selects:
// identifiers outside strings, label matchers and ranges that are neither a
// keyword nor followed by "(".
func promqlMetricNames(expr string) []string {
	var names []string
	seen := map[string]bool{}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipTo := func(i int, close byte) int { // index after the matching close, strings skipped
		for i < len(expr) && expr[i] != close {
			if q := expr[i]; q == '"' || q == '\'' || q == '`' {
				for i++; i < len(expr) && expr[i] != q; i++ {
					if expr[i] == '\\' && q != '`' {
						i++
					}
				}
			}
			i++
		}
		return i + 1
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipTo(i+1, c)
		case c == '{':
			i = skipTo(i+1, '}')
		case c == '[':
			i = skipTo(i+1, ']')
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\n' || expr[k] == '\t') {
				k++
			}
			paren := k < len(expr) && expr[k] == '('
			switch {
			case promqlLabelLists[strings.ToLower(word)]:
				if paren {
					j = skipTo(k+1, ')')
				}
			case promqlKeywords[strings.ToLower(word)] || paren:
			default:
				if !seen[word] {
					seen[word] = true
					names = append(names, word)
				}
			}
			i = j
		default:
			i++
		}
	}
	return names
}

func TestPromQLMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up{job="gavel"} == 0`, []string{"up"}},
		{`histogram_quantile(0.99, sum by (job, api, le) (rate(gavel_authz_check_duration_seconds_bucket{instance=~".*"}[5m]))) > 0.005`,
			[]string{"gavel_authz_check_duration_seconds_bucket"}},
		{`sum(rate(a_total[1m])) by (le) / on (job) group_left(x) b offset 5m unless c`, []string{"a_total", "b", "c"}},
		{`count by (job) (count by (job, revision) (gavel_policy_bundle_info{revision!="a{b}"}))`, []string{"gavel_policy_bundle_info"}},
		{"gavel:x:p99 > 1e-3 and gavel_y", []string{"gavel:x:p99", "gavel_y"}},
	}
	for _, tc := range tests {
		if got := promqlMetricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.expr, got, tc.want)
		}
	}
}
