package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/policy/builtin"
)

func TestHooksLoadAgainstTheRealEndpoint(t *testing.T) {
	b, err := builtin.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	svc := policy.NewService(policy.Options{})
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(map[string]auth.Principal{"tok": {Name: "bench", Roles: []string{auth.RoleAgent}}})
	srv := httptest.NewServer(tokens.Require(auth.RoleAgent, hooks.Handler(hooks.Options{Decider: svc})))
	defer srv.Close()

	mix, err := loadHooksMix("testdata/hooks.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	// Each worker walks the mix from its own quarter (entries 0, 250, 500
	// and 750 on): at 400 rps for 2 s each sends about 200, well past the
	// first risky commands of its quarter (entries 59 and 269). Half a
	// second sent about 50 each, which on a slow run stopped short of them.
	rep, err := runHooks(context.Background(), hooksConfig{URL: srv.URL, Token: "tok", Mix: mix, Concurrency: 4,
		Duration: 2 * time.Second, Rate: 400, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 || rep.Requests < 100 || rep.P99us <= 0 {
		t.Fatalf("report %+v", rep)
	}
	// The mix holds risky commands and a prompt flow: the default policy
	// must have denied or asked some and had no opinion on most.
	if rep.Answers["no_opinion"] == 0 || rep.Answers["deny"]+rep.Answers["ask"] == 0 || rep.ByEvent["PreToolUse"] == 0 {
		t.Errorf("answers %v, events %v", rep.Answers, rep.ByEvent)
	}
	var out bytes.Buffer
	if err := rep.writeTable(&out); err != nil || !strings.Contains(out.String(), "p99") {
		t.Errorf("table: %v\n%s", err, out.String())
	}

	if _, err := runHooks(context.Background(), hooksConfig{URL: srv.URL, Token: "wrong", Mix: mix, Concurrency: 1,
		Duration: time.Second, Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v, want the probe to fail with 401", err)
	}
}

func TestGenHooksIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := genHooks(&a, 200, 7); err != nil {
		t.Fatal(err)
	}
	if err := genHooks(&b, 200, 7); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() || strings.Count(a.String(), "\n") != 200 {
		t.Fatal("same seed, different output (or wrong count)")
	}
	p := filepath.Join(t.TempDir(), "m.jsonl")
	if err := os.WriteFile(p, a.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if mix, err := loadHooksMix(p); err != nil || len(mix) != 200 {
		t.Fatalf("load: %d, %v", len(mix), err)
	}
}

func TestLoadHooksMixErrors(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"":                              "no hook payloads",
		"{\"a\":1}\n":                   ":1: no hook_event_name",
		"# c\n\n[1]\n":                  ":3: not a JSON object",
		`{"hook_event_name":"x"` + "\n": ":1: not a JSON object",
	} {
		p := filepath.Join(dir, "m.jsonl")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := loadHooksMix(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", content, err, want)
		}
	}
}
