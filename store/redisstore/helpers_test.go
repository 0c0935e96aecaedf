package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisAddr is the development Redis (DEVELOPERS.md); GAVEL_REDIS_ADDR
// points the tests elsewhere.
func redisAddr() string {
	if a := os.Getenv("GAVEL_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// requireRedis fails the test when Redis does not answer, unless
// GAVEL_SKIP_REDIS=1 says this machine has none.
func requireRedis(t testing.TB) {
	t.Helper()
	if os.Getenv("GAVEL_SKIP_REDIS") == "1" {
		t.Skip("GAVEL_SKIP_REDIS=1")
	}
	c := NewClient(ClientOptions{Addr: redisAddr()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s does not answer (%v): start it, or set GAVEL_SKIP_REDIS=1", redisAddr(), err)
	}
}

// newClient is a client on addr, closed with the test.
func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := NewClient(ClientOptions{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// uniq is a name no other test run uses, for key prefixes and channels.
func uniq(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "gavel:test:" + hex.EncodeToString(b[:]) + ":"
}

// proxy is a TCP proxy to Redis that a test can cut (every connection
// closed, new ones refused after accept) and restore, on the same port.
type proxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
	})
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !p.track(c, up) {
			continue
		}
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *proxy) pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		_ = err
	}
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut closes every connection and refuses new ones.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Restore forwards again.
func (p *proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
