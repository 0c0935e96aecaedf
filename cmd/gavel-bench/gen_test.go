package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func gen(t *testing.T, cfg genConfig) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := generateMix(&buf, cfg); err != nil {
		t.Fatalf("generateMix(%+v): %v", cfg, err)
	}
	return buf.Bytes()
}

func TestGenerateMixDeterministic(t *testing.T) {
	cfg := genConfig{N: 300, Distinct: 50, Seed: 7}
	a, b := gen(t, cfg), gen(t, cfg)
	if !bytes.Equal(a, b) {
		t.Error("same seed gave different output")
	}
	cfg.Seed = 8
	if bytes.Equal(a, gen(t, cfg)) {
		t.Error("different seeds gave the same output")
	}
}

func TestGenerateMixShape(t *testing.T) {
	tests := []genConfig{
		{N: 1000, Distinct: 200, Seed: 1},
		{N: 50, Distinct: 200, Seed: 2}, // fewer lines than distinct
		{N: 10, Distinct: 1, Seed: 3},
		{N: 1, Distinct: 1, Seed: 4},
	}
	for _, cfg := range tests {
		out := gen(t, cfg)
		reqs, err := readMix(bytes.NewReader(out), "gen")
		if err != nil {
			t.Fatalf("%+v: generated mix does not read back: %v", cfg, err)
		}
		if len(reqs) != cfg.N {
			t.Errorf("%+v: %d requests, want %d", cfg, len(reqs), cfg.N)
		}
		distinct := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasPrefix(line, "#") {
				distinct[line] = true
			}
		}
		if want := min(cfg.N, cfg.Distinct); len(distinct) != want {
			t.Errorf("%+v: %d distinct requests, want %d", cfg, len(distinct), want)
		}
	}
}

func TestGenerateMixContent(t *testing.T) {
	reqs, err := readMix(bytes.NewReader(gen(t, genConfig{N: 1000, Distinct: 200, Seed: 1})), "gen")
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range reqs {
		h := r.GetAttributes().GetRequest().GetHttp()
		count["method "+h.GetMethod()]++
		if h.GetHeaders()[":path"] != h.GetPath() || h.GetHeaders()[":method"] != h.GetMethod() {
			t.Fatalf("pseudo-headers disagree with the request: %v", h)
		}
		for _, k := range []string{"x-api-key", "authorization", "content-type"} {
			if _, ok := h.GetHeaders()[k]; ok {
				count[k]++
			}
		}
		if h.GetBody() != "" {
			count["body"]++
			if h.GetHeaders()["content-type"] != "application/json" || h.GetSize() != int64(len(h.GetBody())) {
				t.Errorf("body without matching content-type/size: %v", h)
			}
		}
		switch p := h.GetPath(); {
		case strings.HasPrefix(p, "/admin/"):
			count["admin"]++
		case p == "/healthz" || p == "/readyz":
			count["health"]++
		case strings.HasPrefix(p, "/api/v1/orders/"):
			count["order by id"]++
		}
		if _, ok := r.GetAttributes().GetContextExtensions()["policy"]; ok {
			count["policy"]++
		}
	}
	for _, k := range []string{"method GET", "method POST", "x-api-key", "authorization", "content-type", "body", "admin", "health", "order by id", "policy"} {
		if count[k] == 0 {
			t.Errorf("mix has no requests with %s: %v", k, count)
		}
	}
}

func TestGenerateMixBadConfig(t *testing.T) {
	for _, cfg := range []genConfig{{N: 0, Distinct: 1}, {N: 1, Distinct: 0}} {
		if err := generateMix(&bytes.Buffer{}, cfg); err == nil {
			t.Errorf("generateMix(%+v) succeeded", cfg)
		}
	}
}

// The committed mix used by the docs must be what gen produces.
func TestTestdataMixUpToDate(t *testing.T) {
	have, err := os.ReadFile("testdata/mix.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if want := gen(t, genConfig{N: 1000, Distinct: 200, Seed: 1}); !bytes.Equal(have, want) {
		t.Error("testdata/mix.jsonl is stale; regenerate with: go run ./cmd/gavel-bench gen --out cmd/gavel-bench/testdata/mix.jsonl")
	}
}
