package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// startNull runs "gavel-bench null --addr 127.0.0.1:0" in process and
// returns the address it printed. The server stops when the test ends.
func startNull(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		var stderr bytes.Buffer
		code := realMain(ctx, []string{"null", "--addr", "127.0.0.1:0"}, pw, &stderr)
		if code != 0 {
			t.Errorf("null exited with %d: %s", code, stderr.String())
		}
		pw.Close()
		exit <- code
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("reading the null server's address: %v", err)
	}
	go io.Copy(io.Discard, pr)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		cancel()
		t.Fatalf("null server printed %q, want \"listening on ADDR\"", line)
	}
	t.Cleanup(func() {
		cancel()
		if code := <-exit; code != 0 {
			t.Errorf("null server exit code %d", code)
		}
	})
	return addr
}

func checkReport(t *testing.T, r *report, wantRequests uint64) {
	t.Helper()
	if r.Requests != wantRequests {
		t.Errorf("requests = %d, want %d", r.Requests, wantRequests)
	}
	if r.Errors != 0 || len(r.ErrorsByCode) != 0 {
		t.Errorf("errors = %d %v, want none", r.Errors, r.ErrorsByCode)
	}
	if r.Allowed != r.Requests || r.Denied != 0 {
		t.Errorf("allowed = %d, denied = %d, want all %d allowed", r.Allowed, r.Denied, r.Requests)
	}
	if !r.ExactPercentiles {
		t.Error("percentiles not exact for a short run")
	}
	if !(r.P50us <= r.P90us && r.P90us <= r.P99us && r.P99us <= r.P999us && r.P999us <= r.MaxUs) {
		t.Errorf("percentiles out of order: %d %d %d %d %d", r.P50us, r.P90us, r.P99us, r.P999us, r.MaxUs)
	}
	if r.Seconds <= 0 || r.RPS <= 0 {
		t.Errorf("seconds = %v, rps = %v, want positive", r.Seconds, r.RPS)
	}
}

func TestEndToEndClosedLoop(t *testing.T) {
	addr := startNull(t)
	var stdout, stderr bytes.Buffer
	code := realMain(t.Context(), []string{
		"run", "--addr", addr, "--requests", "testdata/mix.jsonl",
		"--concurrency", "8", "--conns", "2", "--max-requests", "2000",
		"--duration", "60s", "--json",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("run exited with %d: %s", code, stderr.String())
	}
	// Decode strictly: the JSON field names are a stable interface.
	var r report
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decoding the JSON report: %v", err)
	}
	checkReport(t, &r, 2000)
	if r.Mode != "closed" || r.Concurrency != 8 || r.Conns != 2 {
		t.Errorf("mode/concurrency/conns = %s/%d/%d, want closed/8/2", r.Mode, r.Concurrency, r.Conns)
	}
	var fields map[string]any
	if err := json.Unmarshal(must(json.Marshal(r)), &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"requests", "seconds", "rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "errors", "allowed", "denied", "errors_by_code"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON report lacks %q", k)
		}
	}
}

func TestEndToEndFixedRate(t *testing.T) {
	addr := startNull(t)
	mix, err := loadMix("testdata/mix.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	// 2000 rps for 0.5s after a 0.1s warmup: tickets 200..1199.
	r, err := runLoad(t.Context(), runConfig{
		Addr:        addr,
		Mix:         mix,
		Concurrency: 8,
		Duration:    500 * time.Millisecond,
		Warmup:      100 * time.Millisecond,
		Rate:        2000,
		Timeout:     30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, r, 1000)
	if r.Mode != "rate" || r.TargetRPS != 2000 || r.Conns != 1 {
		t.Errorf("mode/target/conns = %s/%v/%d, want rate/2000/1", r.Mode, r.TargetRPS, r.Conns)
	}

	// The table output mentions the essentials.
	var out bytes.Buffer
	if err := r.writeTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`fixed rate 2000 rps`, `(?m)^requests +1000$`, `p99\.9 \d+`, `(?m)^allowed +1000$`, `(?m)^errors +0$`} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("table does not match %q:\n%s", want, out.String())
		}
	}
}

func TestEndToEndFixedRateMaxRequests(t *testing.T) {
	addr := startNull(t)
	mix, err := loadMix("testdata/mix.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	r, err := runLoad(t.Context(), runConfig{
		Addr: addr, Mix: mix, Concurrency: 4, Duration: time.Minute,
		Rate: 5000, MaxRequests: 300, Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, r, 300)
}

func TestRunProbeFailures(t *testing.T) {
	mix := []*authv3.CheckRequest{{}}

	// A gRPC server without the Authorization service.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	_, err = runLoad(t.Context(), runConfig{Addr: ln.Addr().String(), Mix: mix, Concurrency: 1, Duration: time.Second})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "probe") {
		t.Errorf("against a server without the service: %v, want an Unimplemented probe error", err)
	}

	// Nothing listening.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = runLoad(t.Context(), runConfig{Addr: addr, Mix: mix, Concurrency: 1, Duration: time.Second})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("against a closed port: %v, want Unavailable", err)
	}
}

func TestRunConfigErrors(t *testing.T) {
	ok := runConfig{Addr: "127.0.0.1:1", Mix: []*authv3.CheckRequest{{}}, Concurrency: 1, Duration: time.Second}
	tests := []struct {
		name string
		edit func(*runConfig)
		want string
	}{
		{"no mix", func(c *runConfig) { c.Mix = nil }, "empty request mix"},
		{"concurrency", func(c *runConfig) { c.Concurrency = 0 }, "concurrency"},
		{"conns", func(c *runConfig) { c.Conns = -1 }, "conns"},
		{"duration", func(c *runConfig) { c.Duration = 0 }, "duration"},
		{"warmup", func(c *runConfig) { c.Warmup = -1 }, "warmup"},
		{"rate", func(c *runConfig) { c.Rate = math.Inf(1) }, "rate"},
		{"timeout", func(c *runConfig) { c.Timeout = -1 }, "timeout"},
		{"remote", func(c *runConfig) { c.Addr = "10.0.0.1:9191" }, "not a loopback address"},
	}
	for _, tt := range tests {
		c := ok
		tt.edit(&c)
		if _, err := c.normalize(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: normalize error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	for _, tt := range []struct{ concurrency, conns, want int }{
		{1, 0, 1}, {16, 0, 1}, {17, 0, 2}, {64, 0, 4}, {4, 8, 4}, {64, 3, 3},
	} {
		c := ok
		c.Concurrency, c.Conns = tt.concurrency, tt.conns
		got, err := c.normalize()
		if err != nil || got.Conns != tt.want {
			t.Errorf("concurrency %d conns %d: normalized conns = %d (%v), want %d", tt.concurrency, tt.conns, got.Conns, err, tt.want)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9191", true},
		{"127.0.0.2:0", true},
		{"[::1]:9191", true},
		{"localhost:9191", true},
		{"0.0.0.0:9191", false},
		{":9191", false},
		{"10.1.2.3:9191", false},
		{"example.com:9191", false},
		{"127.0.0.1", false},
	} {
		if err := checkLoopback(tt.addr); (err == nil) != tt.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
		}
	}
}

func TestPlanSchedule(t *testing.T) {
	start := time.Unix(1000, 0)
	count := func(p *plan) (measured, total uint64) {
		for i := uint64(0); ; i++ {
			if _, ok := p.slot(i); !ok {
				return total - p.warmTickets, total
			}
			total++
		}
	}
	tests := []struct {
		rate              float64
		warmup, duration  time.Duration
		max               uint64
		wantWarm, wantMsr uint64
	}{
		{rate: 2000, duration: 500 * time.Millisecond, wantWarm: 0, wantMsr: 1000},
		{rate: 2000, warmup: 100 * time.Millisecond, duration: 500 * time.Millisecond, wantWarm: 200, wantMsr: 1000},
		{rate: 3, duration: time.Second, wantMsr: 3},
		{rate: 3, warmup: time.Second, duration: time.Second, wantWarm: 3, wantMsr: 3},
		{rate: 0.5, duration: 5 * time.Second, wantMsr: 3},
		{rate: 7, warmup: 333 * time.Millisecond, duration: 2 * time.Second, wantWarm: 3, wantMsr: 14},
		{rate: 2000, warmup: 100 * time.Millisecond, duration: time.Minute, max: 300, wantWarm: 200, wantMsr: 300},
	}
	for _, tt := range tests {
		p := newPlan(runConfig{Rate: tt.rate, Warmup: tt.warmup, Duration: tt.duration, MaxRequests: tt.max}, start)
		measured, _ := count(p)
		if p.warmTickets != tt.wantWarm || measured != tt.wantMsr {
			t.Errorf("rate %v warmup %v duration %v max %d: warm %d measured %d, want %d %d",
				tt.rate, tt.warmup, tt.duration, tt.max, p.warmTickets, measured, tt.wantWarm, tt.wantMsr)
		}
		if p.warmTickets > 0 && p.start.Add(p.offset(p.warmTickets-1)).Sub(p.warmEnd) >= 0 {
			t.Errorf("rate %v: last warmup ticket is not before the end of the warmup", tt.rate)
		}
	}
}

// fakeClient answers Check without a network: requests with a "deny"
// context extension are denied, "fail" ones get a gRPC error.
type fakeClient struct{ calls int }

func (f *fakeClient) Check(ctx context.Context, req *authv3.CheckRequest, _ ...grpc.CallOption) (*authv3.CheckResponse, error) {
	f.calls++
	switch req.GetAttributes().GetContextExtensions()["want"] {
	case "deny":
		return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)}}, nil
	case "fail":
		return nil, status.Error(codes.Unavailable, "down")
	}
	return &authv3.CheckResponse{}, ctx.Err()
}

func TestWorkerCall(t *testing.T) {
	want := func(s string) *authv3.CheckRequest {
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{ContextExtensions: map[string]string{"want": s}}}
	}
	fake := &fakeClient{}
	w := &worker{
		client: fake,
		mix:    []*authv3.CheckRequest{want("allow"), want("deny"), want("fail")},
		next:   1, // own offset into the mix
		rec:    newRecorder(16),
		errs:   map[codes.Code]uint64{},
	}
	ctx := t.Context()
	now := time.Now()
	for range 6 {
		w.call(ctx, time.Minute, now, true)
	}
	w.call(ctx, time.Minute, now, false) // warmup: sent, not counted
	// Queued longer than the timeout: counted as DeadlineExceeded, not sent.
	w.call(ctx, time.Second, now.Add(-time.Hour), true)

	if fake.calls != 7 {
		t.Errorf("client calls = %d, want 7", fake.calls)
	}
	if w.allowed != 2 || w.denied != 2 {
		t.Errorf("allowed %d denied %d, want 2 2", w.allowed, w.denied)
	}
	if w.errs[codes.Unavailable] != 2 || w.errs[codes.DeadlineExceeded] != 1 {
		t.Errorf("errors = %v, want 2 Unavailable, 1 DeadlineExceeded", w.errs)
	}
	if w.rec.hist.n != 4 {
		t.Errorf("latencies recorded = %d, want 4 (errors excluded)", w.rec.hist.n)
	}

	r := newReport(runConfig{Addr: "x", Concurrency: 1, Conns: 1}, []*worker{w}, time.Second)
	if r.Requests != 7 || r.Errors != 3 || r.ErrorsByCode["Unavailable"] != 2 || r.ErrorsByCode["DeadlineExceeded"] != 1 || r.RPS != 7 {
		t.Errorf("report = %+v", r)
	}
}

func TestMainUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, "usage: gavel-bench"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"help"}, 0, "commands:"},
		{[]string{"run"}, 2, "--requests is required"},
		{[]string{"run", "--requests", "testdata/mix.jsonl", "extra"}, 2, "unexpected arguments"},
		{[]string{"run", "--nope"}, 2, "flag provided but not defined"},
		{[]string{"run", "-h"}, 0, "-concurrency"},
		{[]string{"run", "--requests", "testdata/missing.jsonl"}, 1, "missing.jsonl"},
		{[]string{"gen"}, 2, "--out is required"},
		{[]string{"null", "--addr", "0.0.0.0:0"}, 1, "not a loopback address"},
	} {
		var stdout, stderr bytes.Buffer
		code := realMain(t.Context(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.out) {
			t.Errorf("gavel-bench %q: exit %d, output %q; want exit %d and %q", tt.args, code, stdout.String()+stderr.String(), tt.code, tt.out)
		}
	}
}

func TestMainGen(t *testing.T) {
	out := t.TempDir() + "/mix.jsonl"
	var stdout, stderr bytes.Buffer
	if code := realMain(t.Context(), []string{"gen", "--out", out, "--n", "20", "--distinct", "5", "--seed", "3"}, &stdout, &stderr); code != 0 {
		t.Fatalf("gen exited with %d: %s", code, stderr.String())
	}
	reqs, err := loadMix(out)
	if err != nil || len(reqs) != 20 {
		t.Fatalf("loadMix(generated) = %d requests, %v; want 20", len(reqs), err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
