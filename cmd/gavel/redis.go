package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/breaker"
	"github.com/gavel-dev/gavel/store/redisstore"
)

// redisConfig is the optional Redis tier's flags (GAVEL_REDIS_ADDR and so
// on through bindConfig).
type redisConfig struct {
	addr     string
	password string
	db       int
	timeout  time.Duration
}

func (c *redisConfig) flags(f *pflag.FlagSet) {
	f.StringVar(&c.addr, "redis-addr", "", "Redis HOST:PORT shared by replicas: the L2 decision cache and the event bus (off when empty)")
	f.StringVar(&c.password, "redis-password", "", "Redis password")
	f.IntVar(&c.db, "redis-db", 0, "Redis database number")
	f.DurationVar(&c.timeout, "redis-timeout", 5*time.Millisecond, "bound on one L2 cache lookup; past it the lookup is a miss and the policy is evaluated")
}

// redisTier is Redis as gavel uses it: the L2 decision cache and the event
// bus, both behind the circuit breaker named "redis". Redis down never
// makes gavel unready: decisions go on from L1 and the engine, events stay
// on this replica, and /readyz says so in its "redis" check.
type redisTier struct {
	client  *redis.Client
	breaker *breaker.Breaker
	cache   *redisstore.Cache
	bus     *redisstore.Bus
	stop    context.CancelFunc
	done    chan struct{}
}

// newRedis builds the Redis tier, or returns nil when --redis-addr is
// empty. The bus runs until ctx ends or close is called. Redis need not be
// up: the tier starts degraded and recovers when it answers.
func newRedis(ctx context.Context, cfg redisConfig, reg prometheus.Registerer, bm *breaker.Metrics, log *slog.Logger) *redisTier {
	if cfg.addr == "" {
		return nil
	}
	m := redisstore.NewMetrics(reg)
	br := breaker.New("redis", breaker.Options{Metrics: bm})
	br.OnChange(func(name string, from, to breaker.State) {
		log.Warn("circuit breaker", "name", name, "from", from.String(), "to", to.String())
	})
	client := redisstore.NewClient(redisstore.ClientOptions{Addr: cfg.addr, Password: cfg.password, DB: cfg.db})
	r := &redisTier{
		client:  client,
		breaker: br,
		cache:   redisstore.NewCache(client, redisstore.CacheOptions{GetTimeout: cfg.timeout, Breaker: br, Metrics: m}),
		bus:     redisstore.NewBus(client, redisstore.BusOptions{Breaker: br, Metrics: m, Logger: log}),
		done:    make(chan struct{}),
	}
	ctx, r.stop = context.WithCancel(ctx)
	go func() {
		defer close(r.done)
		_ = r.bus.Run(ctx)
	}()
	log.Info("redis tier", "addr", cfg.addr, "db", cfg.db, "get_timeout", cfg.timeout.String())
	return r
}

// shared is the L2 for policy.CacheOptions.Shared (nil without Redis).
func (r *redisTier) shared() policy.SharedCache {
	if r == nil {
		return nil
	}
	return r.cache
}

// check is the /readyz "redis" check: "ok", or "degraded: <why>".
func (r *redisTier) check() string {
	if r == nil {
		return ""
	}
	var why []string
	if s := r.breaker.State(); s != breaker.Closed {
		why = append(why, "circuit breaker "+s.String())
	}
	if err := r.bus.Err(); err != nil {
		why = append(why, "event bus: "+err.Error())
	}
	if len(why) == 0 {
		return "ok"
	}
	return "degraded: " + strings.Join(why, "; ")
}

// addCheck adds the "redis" check to a readiness status; it never changes
// Ready.
func (r *redisTier) addCheck(checks map[string]string) {
	if r == nil || checks == nil {
		return
	}
	checks["redis"] = r.check()
}

// close stops the bus, lets pending cache writes finish and closes the
// client.
func (r *redisTier) close() {
	if r == nil {
		return
	}
	r.stop()
	<-r.done
	_ = r.cache.Close()
	_ = r.client.Close()
}

// newEventBus is the bus events are published on: Redis pub/sub across
// replicas when --redis-addr is set (falling back to this process while
// Redis is down), else an in-process bus.
func newEventBus(cfg *serveConfig, r *redisTier) store.Bus {
	if cfg != nil && cfg.redis.addr != "" && r != nil {
		return r.bus
	}
	return store.NewMemoryBus(0)
}

// publishBreaker publishes the Redis breaker's state changes on bus.
func (r *redisTier) publishBreaker(bus store.Bus) {
	if r == nil || bus == nil {
		return
	}
	publishBreakerEvents(r.breaker, bus)
}

// publishBreakerEvents publishes b's state changes on bus as breaker
// events: {"name", "from", "to"}.
func publishBreakerEvents(b *breaker.Breaker, bus store.Bus) {
	replica := replicaID()
	b.OnChange(func(name string, from, to breaker.State) {
		data, _ := json.Marshal(map[string]string{"name": name, "from": from.String(), "to": to.String()})
		_ = bus.Publish(context.Background(), store.Event{Type: store.EventBreaker, Time: time.Now().UTC(), Replica: replica, Data: data})
	})
}
