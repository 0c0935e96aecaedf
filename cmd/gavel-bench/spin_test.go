package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// A spinner burns about burst of CPU time per period: the process's CPU
// time over a run is at least half of bursts x burst (it may be
// descheduled within a burst on a busy machine, never more than that).
func TestSpinBurnsItsShare(t *testing.T) {
	u0, s0, ok := processCPU()
	if !ok {
		t.Skip("no process CPU time on this platform")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	n := spin(ctx, 20*time.Millisecond, 50*time.Millisecond)
	u1, s1, _ := processCPU()
	if n < 3 || n > 10 {
		t.Fatalf("%d bursts in 500 ms at one per 50 ms", n)
	}
	cpu := u1 + s1 - u0 - s0
	if want := time.Duration(n) * 20 * time.Millisecond / 2; cpu < want {
		t.Errorf("%d bursts of 20 ms used %v of CPU, want at least %v", n, cpu, want)
	}
}

func TestSpinCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"spin", "--burst", "1ms", "--every", "10ms", "--duration", "100ms"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "bursts of 1ms every 10ms") {
		t.Errorf("output %q", out.String())
	}
	errb.Reset()
	if code := realMain(context.Background(), []string{"spin", "--burst", "10ms", "--every", "10ms"}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), "shorter than --every") {
		t.Errorf("burst = every: exit %d, %q", code, errb.String())
	}
}
