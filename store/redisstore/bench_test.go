package redisstore

import (
	"testing"
	"time"
)

// BenchmarkRedisGet is the L2 hit path: one GET over loopback and the
// decode of a typical decision, through the breaker.
func BenchmarkRedisGet(b *testing.B) {
	requireRedis(b)
	// A generous timeout: this measures the hit path, not whether a loaded
	// machine stalls a goroutine for 5 ms.
	c := NewCache(newClient(b, redisAddr()), CacheOptions{Prefix: uniq(b), GetTimeout: time.Second})
	k := key("bench")
	c.Set(b.Context(), k, fullDecision(), time.Minute)
	c.Wait()
	if _, ok := c.Get(b.Context(), k); !ok {
		b.Fatal("miss")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, ok := c.Get(b.Context(), k); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkRedisGetParallel is the hit path under concurrent decisions.
func BenchmarkRedisGetParallel(b *testing.B) {
	requireRedis(b)
	// A generous timeout: this measures the hit path, not whether a loaded
	// machine stalls a goroutine for 5 ms.
	c := NewCache(newClient(b, redisAddr()), CacheOptions{Prefix: uniq(b), GetTimeout: time.Second})
	k := key("bench")
	c.Set(b.Context(), k, fullDecision(), time.Minute)
	c.Wait()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := c.Get(b.Context(), k); !ok {
				b.Error("miss")
				return
			}
		}
	})
}
