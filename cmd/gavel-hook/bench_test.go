package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// BenchmarkProcess measures what Claude Code pays per PreToolUse: starting
// gavel-hook, forwarding the payload to a local gavel that allows it, and
// the process's exit. It reports whole-process latency percentiles.
func BenchmarkProcess(b *testing.B) {
	allow := `{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","permissionDecisionReason":"ok"}}`
	rec := newRecorder(b, answerWith(http.StatusOK, allow))
	in := payload(b, "pretooluse_bash")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.TempDir(), "GAVEL_SPOOL_DIR=" + b.TempDir(),
		"GAVEL_URL=" + rec.srv.URL, "GAVEL_TOKEN=tok"}
	n := b.N
	if n < 200 {
		n = 200
	}
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
		if out.String() != allow {
			b.Fatalf("stdout %q", out.String())
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
}
