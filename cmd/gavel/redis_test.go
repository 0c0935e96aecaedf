package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/store"
)

func TestRedisFlagsFromEnvironment(t *testing.T) {
	t.Setenv("GAVEL_REDIS_ADDR", "10.0.0.7:6380")
	t.Setenv("GAVEL_REDIS_DB", "3")
	cmd, cfg := configCmd()
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if err := bindConfig(cmd, nil); err != nil {
		t.Fatal(err)
	}
	if cfg.redis.addr != "10.0.0.7:6380" || cfg.redis.db != 3 || cfg.redis.timeout != 5*time.Millisecond {
		t.Fatalf("redis config %+v", cfg.redis)
	}
}

func TestRedisOffByDefault(t *testing.T) {
	cfg := &serveConfig{}
	r := newRedis(t.Context(), cfg.redis, nil, nil, nil)
	if r != nil {
		t.Fatal("a Redis tier without --redis-addr")
	}
	if r.shared() != nil {
		t.Fatal("an L2 without Redis") // a typed nil here would be called
	}
	checks := map[string]string{}
	r.addCheck(checks)
	if _, ok := checks["redis"]; ok {
		t.Fatalf("a redis check without Redis: %v", checks)
	}
	r.close()
	if _, ok := newEventBus(cfg, r).(*store.MemoryBus); !ok {
		t.Fatal("without Redis the event bus is not the in-process one")
	}
}

// readyz reads /readyz.
func readyz(t *testing.T, g *gavelProc) (int, struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}) {
	t.Helper()
	var st struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	resp, err := http.Get("http://" + g.info.HTTPAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, st
}

func metricsText(t *testing.T, g *gavelProc) string {
	t.Helper()
	resp, err := http.Get("http://" + g.info.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestRedisServeReportsTheTierInReadyz(t *testing.T) {
	if os.Getenv("GAVEL_SKIP_REDIS") == "1" {
		t.Skip("GAVEL_SKIP_REDIS=1")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second); err != nil {
		t.Fatalf("Redis at 127.0.0.1:6379 does not answer (%v): start it, or set GAVEL_SKIP_REDIS=1", err)
	} else {
		c.Close()
	}
	up := startGavel(t, "--redis-addr", "127.0.0.1:6379")
	waitFor(t, 10*time.Second, "the redis check to be ok", func() bool {
		code, st := readyz(t, up)
		return code == http.StatusOK && st.Ready && st.Checks["redis"] == "ok"
	})
	m := metricsText(t, up)
	for _, want := range []string{`gavel_circuit_breaker_state{name="redis"} 0`, "gavel_event_bus_degraded 0"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A port nobody listens on: Redis down. gavel is ready all the same.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	down := startGavel(t, "--redis-addr", closed)
	waitFor(t, 10*time.Second, "the redis check to say degraded", func() bool {
		_, st := readyz(t, down)
		return strings.HasPrefix(st.Checks["redis"], "degraded: ")
	})
	code, st := readyz(t, down)
	if code != http.StatusOK || !st.Ready || st.Checks["policy"] != "ok" {
		t.Fatalf("/readyz with Redis down: %d %+v; want 200 and ready", code, st)
	}
	if m := metricsText(t, down); !strings.Contains(m, "gavel_event_bus_degraded 1") {
		t.Error("/metrics lacks gavel_event_bus_degraded 1 with Redis down")
	}
}
