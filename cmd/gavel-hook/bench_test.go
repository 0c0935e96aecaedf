package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/policy/builtin"
)

// BenchmarkProcess measures what Claude Code pays per PreToolUse: starting
// gavel-hook, forwarding the payload to gavel's real hooks endpoint deciding
// with the default policy, and the process's exit. It reports
// whole-process latency percentiles over at least 200 runs. (Only the test
// imports the engine; the binary does not.)
func BenchmarkProcess(b *testing.B) {
	bundle, err := builtin.Bundle()
	if err != nil {
		b.Fatal(err)
	}
	svc := policy.NewService(policy.Options{})
	if _, err := svc.Activate(context.Background(), bundle); err != nil {
		b.Fatal(err)
	}
	tokens := auth.NewTokens(map[string]auth.Principal{"tok": {Name: "bench", Roles: []string{auth.RoleAgent}}})
	srv := httptest.NewServer(tokens.Require(auth.RoleAgent, hooks.Handler(hooks.Options{Decider: svc})))
	defer srv.Close()

	for _, tc := range []struct{ name, command, want string }{
		{"deny", "rm -rf ~", `"permissionDecision":"deny"`},
		{"no-opinion", "go test ./...", ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var hook map[string]any
			if err := json.Unmarshal(payload(b, "pretooluse_bash"), &hook); err != nil {
				b.Fatal(err)
			}
			hook["tool_input"].(map[string]any)["command"] = tc.command
			in, _ := json.Marshal(hook)
			env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.TempDir(), "GAVEL_SPOOL_DIR=" + b.TempDir(),
				"GAVEL_URL=" + srv.URL, "GAVEL_TOKEN=tok"}
			n := max(b.N, 200)
			lat := make([]time.Duration, 0, n)
			b.ResetTimer()
			for range n {
				cmd := exec.Command(hookBin, "PreToolUse")
				cmd.Env = env
				cmd.Stdin = bytes.NewReader(in)
				var out bytes.Buffer
				cmd.Stdout = &out
				start := time.Now()
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				if !strings.Contains(out.String(), tc.want) || (tc.want == "" && out.Len() != 0) {
					b.Fatalf("stdout %q, want %q", out.String(), tc.want)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			ms := func(q float64) float64 {
				return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(0.50), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
			b.ReportMetric(ms(1), "max-ms")
		})
	}
}
