package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// cutMode is how a cut [tcpProxy] treats new connections.
type cutMode int

const (
	// refuse: nothing listens on the proxy's port, so a dial fails at once
	// with "connection refused", as when the server is down.
	refuse cutMode = iota
	// blackHole: a dial succeeds but nothing is forwarded and nothing comes
	// back, as behind a network partition; only the client's own timeouts
	// end the wait.
	blackHole
)

func (m cutMode) String() string {
	if m == blackHole {
		return "black-hole"
	}
	return "refuse"
}

// tcpProxy forwards 127.0.0.1:<port> to a target so that a test can cut
// the path between gavel and a server it depends on and restore it, on the
// same port.
type tcpProxy struct {
	t      testing.TB
	addr   string
	target string

	mu       sync.Mutex
	ln       net.Listener // nil while cut in refuse mode
	cut      bool
	mode     cutMode
	closed   bool
	conns    map[net.Conn]struct{} // forwarded, both sides
	held     map[net.Conn]struct{} // accepted while black-holed
	heldEver int
}

// newTCPProxy listens on a free loopback port and forwards to target until
// the test ends.
func newTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, addr: ln.Addr().String(), target: target, ln: ln,
		conns: map[net.Conn]struct{}{}, held: map[net.Conn]struct{}{}}
	go p.serve(ln)
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's address, host:port.
func (p *tcpProxy) Addr() string { return p.addr }

func (p *tcpProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		switch {
		case p.closed:
			p.mu.Unlock()
			_ = c.Close()
			continue
		case p.cut && p.mode == refuse: // accepted as the listener closed
			p.mu.Unlock()
			_ = c.Close()
			continue
		case p.cut: // black-holed: keep it open, never answer
			p.held[c] = struct{}{}
			p.heldEver++
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *tcpProxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.cut || p.closed {
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
	}
	wg.Go(func() { pipe(up, c) })
	wg.Go(func() { pipe(c, up) })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// Cut closes every forwarded connection and, until Restore, refuses or
// black-holes new ones.
func (p *tcpProxy) Cut(mode cutMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut, p.mode = true, mode
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
	if mode == refuse && p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
}

// Restore forwards new connections again. Connections black-holed during
// the cut stay as they are (open, silent): a client that never gives up on
// one keeps waiting, as it would for a server that lost its state.
func (p *tcpProxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	if p.ln != nil {
		return
	}
	// The port was given up to refuse connections; take it back (Go sets
	// SO_REUSEADDR, so a socket in TIME_WAIT does not stand in the way).
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.ln = ln
			go p.serve(ln)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("proxy: listen on %s again: %v", p.addr, err)
}

// Held is how many black-holed connections the client has not closed yet,
// and how many were black-holed in all.
func (p *tcpProxy) Held() (open, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.held {
		// A client that gave up closed its end: the read sees EOF.
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [512]byte
		_, err := c.Read(b[:])
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			_ = c.Close()
			delete(p.held, c)
		}
	}
	return len(p.held), p.heldEver
}

func (p *tcpProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed, p.cut = true, true
	if p.ln != nil {
		_ = p.ln.Close()
	}
	for c := range p.conns {
		_ = c.Close()
	}
	for c := range p.held {
		_ = c.Close()
	}
}
