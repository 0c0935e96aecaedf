package store

import (
	"context"
	"sync"
)

// MemoryBus is an in-process [Bus]: the fan-out of a single replica, and
// the fallback when the shared bus (Redis) is down.
type MemoryBus struct {
	buffer int
	mu     sync.RWMutex
	subs   map[*memorySub]struct{}
}

// NewMemoryBus returns a bus whose subscribers may fall buffer events
// behind before they are dropped (buffer < 1 means 256).
func NewMemoryBus(buffer int) *MemoryBus {
	if buffer < 1 {
		buffer = 256
	}
	return &MemoryBus{buffer: buffer, subs: map[*memorySub]struct{}{}}
}

// Publish hands e to every subscriber without waiting for any.
func (b *MemoryBus) Publish(_ context.Context, e Event) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs {
		s.offer(e)
	}
	return nil
}

// Subscribe adds a subscriber until ctx ends or it is closed.
func (b *MemoryBus) Subscribe(ctx context.Context) Subscription {
	s := &memorySub{bus: b, ch: make(chan Event, b.buffer)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	if ctx.Done() != nil {
		s.stop = context.AfterFunc(ctx, func() { s.end(ctx.Err()) })
	}
	return s
}

// Subscribers is how many subscriptions are open.
func (b *MemoryBus) Subscribers() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

type memorySub struct {
	bus  *MemoryBus
	ch   chan Event
	stop func() bool

	mu     sync.Mutex
	err    error
	closed bool
}

func (s *memorySub) Events() <-chan Event { return s.ch }

func (s *memorySub) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *memorySub) Close() { s.end(nil) }

// offer queues e, or ends a subscriber whose queue is full.
func (s *memorySub) offer(e Event) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	select {
	case s.ch <- e:
		s.mu.Unlock()
	default:
		s.mu.Unlock()
		go s.end(ErrLagged) // end takes the bus lock Publish holds
	}
}

func (s *memorySub) end(err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.err = true, err
	close(s.ch)
	s.mu.Unlock()
	if s.stop != nil {
		s.stop()
	}
	s.bus.mu.Lock()
	delete(s.bus.subs, s)
	s.bus.mu.Unlock()
}
