package xds

import (
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// A node whose streams all closed keeps its snapshot for ForgetAfter (it may
// be restarting), then is forgotten: no longer pushed to, its snapshot gone
// from the cache. Coming back makes it a node like any new one.
func TestControllerForgetsDisconnectedNodes(t *testing.T) {
	f := newFixture(t, testIR())
	c := f.connect(t, "web-1")
	c.subscribe(resource.ClusterType)
	c.ack(c.expect(resource.ClusterType))

	// Closing the stream marks the node gone.
	c.stream.CloseSend()
	deadline := time.Now().Add(wait)
	var since time.Time
	for {
		f.ctrl.mu.Lock()
		since = f.ctrl.gone["web-1"]
		f.ctrl.mu.Unlock()
		if !since.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the controller never heard that web-1 disconnected")
		}
		time.Sleep(5 * time.Millisecond)
	}

	f.ctrl.forgetGone(since.Add(DefaultForgetAfter - time.Second))
	if _, err := f.ctrl.Snapshot("web-1"); err != nil {
		t.Fatalf("web-1 forgotten before ForgetAfter: %v", err)
	}
	f.ctrl.forgetGone(since.Add(DefaultForgetAfter))
	if _, err := f.ctrl.Snapshot("web-1"); err == nil {
		t.Fatal("web-1 still has a snapshot after ForgetAfter")
	}
	f.ctrl.mu.Lock()
	_, known := f.ctrl.nodes["web-1"]
	f.ctrl.mu.Unlock()
	if known {
		t.Fatal("web-1 is still pushed to after ForgetAfter")
	}

	// Back again: served the snapshot in force.
	c2 := f.connect(t, "web-1")
	c2.subscribe(resource.ClusterType)
	if resp := c2.expect(resource.ClusterType); len(resp.GetResources()) == 0 {
		t.Fatal("a forgotten node that reconnects gets no clusters")
	}
}

// A node that reconnects before ForgetAfter is not forgotten.
func TestControllerKeepsReturningNodes(t *testing.T) {
	f := newFixture(t, testIR())
	f.ctrl.AddNode("web-2")
	awaitBuild(t, f.ctrl, 1)
	t0 := time.Now()
	f.ctrl.nodeGone("web-2", t0)
	f.ctrl.AddNode("web-2") // reconnected
	f.ctrl.forgetGone(t0.Add(time.Hour))
	if _, err := f.ctrl.Snapshot("web-2"); err != nil {
		t.Fatalf("a node that came back was forgotten: %v", err)
	}
}
