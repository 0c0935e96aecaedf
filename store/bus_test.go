package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestMemoryBus(t *testing.T) {
	b := NewMemoryBus(2)
	ctx := context.Background()
	fast := b.Subscribe(ctx)
	slow := b.Subscribe(ctx)
	cctx, cancel := context.WithCancel(ctx)
	gone := b.Subscribe(cctx)
	cancel()
	if _, ok := <-gone.Events(); ok || !errors.Is(gone.Err(), context.Canceled) {
		t.Fatalf("cancelled subscription: err %v", gone.Err())
	}

	for i := range 3 {
		if err := b.Publish(ctx, Event{Type: EventDecision, Data: []byte{'0' + byte(i)}}); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if e := <-fast.Events(); string(e.Data) != string(rune('0'+i)) {
				t.Fatalf("fast got %s", e.Data)
			}
		}
	}
	// slow read nothing: the third event overflowed its buffer of 2.
	deadline := time.Now().Add(5 * time.Second)
	for slow.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(slow.Err(), ErrLagged) {
		t.Fatalf("slow subscriber: err %v, want ErrLagged", slow.Err())
	}
	n := 0
	for range slow.Events() {
		n++
	}
	if n != 2 {
		t.Fatalf("slow subscriber drained %d events, want the 2 it had", n)
	}
	if e := <-fast.Events(); string(e.Data) != "2" {
		t.Fatalf("fast got %s", e.Data)
	}
	fast.Close()
	if _, ok := <-fast.Events(); ok || fast.Err() != nil {
		t.Fatalf("closed: err %v", fast.Err())
	}
	if b.Subscribers() != 0 {
		t.Fatalf("%d subscribers left", b.Subscribers())
	}
}
