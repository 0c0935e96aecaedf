package xds

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/gavel-dev/gavel/envoy"
	"github.com/gavel-dev/gavel/xds/ports"
)

// DefaultHoldoff is how long the controller waits after the first change
// for more changes before it builds a snapshot.
const DefaultHoldoff = 100 * time.Millisecond

// DefaultForgetAfter is how long a disconnected node is remembered.
const DefaultForgetAfter = 5 * time.Minute

// ControllerOptions configure [NewController]. Zero values mean the defaults.
type ControllerOptions struct {
	// IR is the base IR (the services file); SetIR replaces it.
	IR envoy.IR
	// Holdoff coalesces changes: the snapshot is built this long after the
	// first change of a burst (DefaultHoldoff).
	Holdoff time.Duration
	// ForgetAfter is how long a node with no open stream keeps its
	// snapshot before the controller forgets it (DefaultForgetAfter). A node
	// that comes back within it resumes where it was; after it, it is
	// served like a new node. Without this, every node id ever seen (pods
	// come and go) would be pushed to for the life of the process.
	ForgetAfter time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Controller turns its inputs (the base IR and the live instances in the
// port registry) into go-control-plane snapshots. One loop, [Controller.Run],
// coalesces changes, translates, checks consistency and sets the snapshot
// for every node that ever connected; a change that fails keeps the last
// good snapshot in force.
type Controller struct {
	srv      *Server // its caches receive the snapshots
	registry ports.Registry
	metrics  *metrics
	log      *slog.Logger
	holdoff  time.Duration
	forget   time.Duration
	kick     chan struct{} // buffered (one): something changed

	mu       sync.Mutex
	ir       envoy.IR
	dirty    bool                 // the inputs changed since the last build
	first    time.Time            // first change not yet pushed (zero: none)
	nodes    map[string]bool      // every node id that connected: is it a proxyless gRPC client?
	pending  map[string]bool      // nodes that have not been given a snapshot yet
	gone     map[string]time.Time // nodes with no open stream, since when
	lastGood *snapshots           // nil until the first successful build
	version  uint64               // version of lastGood
}

// NewController returns a controller that publishes into srv's snapshot
// cache and learns from srv which nodes connect. registry may be nil (no
// port discovery: the IR's own endpoints only). Call Run to start it.
func NewController(srv *Server, registry ports.Registry, opts ControllerOptions) *Controller {
	if opts.Holdoff <= 0 {
		opts.Holdoff = DefaultHoldoff
	}
	if opts.ForgetAfter <= 0 {
		opts.ForgetAfter = DefaultForgetAfter
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Controller{
		srv:      srv,
		registry: registry,
		metrics:  srv.metrics,
		log:      opts.Logger.With("component", "xds-controller"),
		holdoff:  opts.Holdoff,
		forget:   opts.ForgetAfter,
		kick:     make(chan struct{}, 1),
		ir:       opts.IR,
		nodes:    map[string]bool{},
		pending:  map[string]bool{},
		gone:     map[string]time.Time{},
	}
	srv.nodes.Store(c)
	return c
}

// snapshots are the two snapshots of one build, with the same version:
// Envoy sidecars get the sidecar one (ingress_<service> listeners), and
// proxyless gRPC clients the proxyless one (api_listeners named after the
// services), both over the same clusters and assignments.
type snapshots struct {
	sidecar, proxyless *cache.Snapshot
}

func (s *snapshots) forNode(proxyless bool) *cache.Snapshot {
	if proxyless {
		return s.proxyless
	}
	return s.sidecar
}

// SetIR replaces the base IR; the next snapshot is built from it.
func (c *Controller) SetIR(ir envoy.IR) {
	c.mu.Lock()
	c.ir = ir
	c.markDirtyLocked()
	c.mu.Unlock()
	c.signal()
}

// AddNode makes a node id known as an Envoy sidecar: it is given the
// snapshot in force (after the holdoff) and every later one. Adding a known
// node does nothing.
func (c *Controller) AddNode(id string) { c.addNode(id, false) }

// addNode is AddNode for either kind of node; the server calls it on a
// stream's first request, with proxyless set for gRPC clients (see
// isProxyless). A node keeps the kind it first connected with.
func (c *Controller) addNode(id string, proxyless bool) {
	c.mu.Lock()
	delete(c.gone, id)
	_, known := c.nodes[id]
	if !known {
		c.nodes[id] = proxyless
		c.pending[id] = true
		if c.first.IsZero() {
			c.first = time.Now()
		}
	}
	c.mu.Unlock()
	if !known {
		c.signal()
	}
}

// nodeGone records that a node's last stream closed; the node is
// forgotten ForgetAfter later unless it connects again.
func (c *Controller) nodeGone(id string, at time.Time) {
	c.mu.Lock()
	if _, known := c.nodes[id]; known {
		c.gone[id] = at
	}
	c.mu.Unlock()
}

// forgetGone drops the nodes that have been gone for ForgetAfter: they are
// no longer pushed to, and their snapshots leave the caches.
func (c *Controller) forgetGone(now time.Time) {
	c.mu.Lock()
	var forgotten []string
	kinds := map[string]bool{}
	for id, since := range c.gone {
		if now.Sub(since) >= c.forget {
			forgotten = append(forgotten, id)
			kinds[id] = c.nodes[id]
			delete(c.gone, id)
			delete(c.nodes, id)
			delete(c.pending, id)
		}
	}
	c.mu.Unlock()
	for _, id := range forgotten {
		c.srv.cacheFor(kinds[id]).ClearSnapshot(id)
	}
	if len(forgotten) > 0 {
		c.log.Info("xds: forgot disconnected nodes", "nodes", len(forgotten), "after", c.forget.String())
	}
}

// Snapshot returns the snapshot set for nodeID (for the admin dump).
func (c *Controller) Snapshot(nodeID string) (cache.ResourceSnapshot, error) {
	c.mu.Lock()
	proxyless := c.nodes[nodeID]
	c.mu.Unlock()
	return c.srv.cacheFor(proxyless).GetSnapshot(nodeID)
}

// Version is the version of the snapshot in force, 0 before the first.
func (c *Controller) Version() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

func (c *Controller) markDirtyLocked() {
	c.dirty = true
	if c.first.IsZero() {
		c.first = time.Now()
	}
}

func (c *Controller) signal() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run is the controller loop. It builds a first snapshot at once (after
// the holdoff), then one per burst of changes, until ctx is done; it
// returns nil then.
func (c *Controller) Run(ctx context.Context) error {
	var changes <-chan struct{}
	if c.registry != nil {
		changes = c.registry.Changes()
	}
	c.mu.Lock()
	c.markDirtyLocked()
	c.mu.Unlock()

	// The holdoff timer starts at the first change of a burst and is not
	// reset by later ones, so a steady stream of changes still gets pushed
	// every holdoff.
	timer := time.NewTimer(c.holdoff)
	defer timer.Stop()
	armed := true
	sweep := time.NewTicker(max(c.forget/4, time.Millisecond))
	defer sweep.Stop()
	arm := func() {
		if !armed {
			timer.Reset(c.holdoff)
			armed = true
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
			c.mu.Lock()
			c.markDirtyLocked()
			c.mu.Unlock()
			arm()
		case <-c.kick:
			arm()
		case <-timer.C:
			armed = false
			c.push(ctx)
		case now := <-sweep.C:
			c.forgetGone(now)
		}
	}
}

// push builds a snapshot if the inputs changed and sets it for every known
// node; otherwise (or if the build fails) it gives nodes that have none yet
// the last good snapshot.
func (c *Controller) push(ctx context.Context) {
	c.mu.Lock()
	dirty, ir, first := c.dirty, c.ir, c.first
	c.dirty, c.first = false, time.Time{}
	pending := slices.Sorted(maps.Keys(c.pending))
	clear(c.pending)
	c.mu.Unlock()

	if dirty {
		snap, version, err := c.build(ctx, ir)
		if err == nil {
			c.mu.Lock()
			c.lastGood, c.version = snap, version
			nodes := slices.Sorted(maps.Keys(c.nodes))
			c.mu.Unlock()
			c.set(ctx, nodes, snap)
			c.metrics.pushes.Inc()
			c.metrics.pushDuration.Observe(time.Since(first).Seconds())
			c.metrics.snapshotVersion.Set(float64(version))
			c.log.Debug("xds snapshot pushed", "version", version, "nodes", len(nodes))
			return
		}
		c.metrics.translateErrors.Inc()
		c.log.Error("xds: cannot build a snapshot; the last good one stays in force",
			"last_good_version", c.Version(), "error", err)
	}
	c.mu.Lock()
	snap := c.lastGood
	c.mu.Unlock()
	if snap != nil {
		c.set(ctx, pending, snap)
	}
}

func (c *Controller) set(ctx context.Context, nodes []string, snaps *snapshots) {
	for _, n := range nodes {
		c.mu.Lock()
		proxyless := c.nodes[n]
		c.mu.Unlock()
		snap := snaps.forNode(proxyless)
		if err := c.srv.cacheFor(proxyless).SetSnapshot(ctx, n, snap); err != nil {
			c.log.Error("xds: set snapshot", "node", n, "version", snap.GetVersion(""), "error", err)
		}
	}
}

// build merges the live instances into ir, translates it and checks the
// snapshot. The version is taken only when everything succeeded, so
// versions count good snapshots: 1, 2, 3, ...
func (c *Controller) build(ctx context.Context, ir envoy.IR) (*snapshots, uint64, error) {
	if c.registry != nil {
		insts, err := c.registry.List(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("list instances: %w", err)
		}
		ir = c.withInstances(ir, insts)
	}
	res, err := envoy.Translate(ir)
	if err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	version := c.version + 1
	c.mu.Unlock()
	v := strconv.FormatUint(version, 10)
	snap, err := cache.NewSnapshot(v, res.ByType())
	if err != nil {
		return nil, 0, fmt.Errorf("new snapshot: %w", err)
	}
	if err := snap.Consistent(); err != nil {
		return nil, 0, fmt.Errorf("snapshot %d is not consistent: %w", version, err)
	}
	// go-control-plane's Consistent collects RDS names from listeners'
	// filter chains only, never from api_listeners, so it would call every
	// proxyless route configuration unreferenced. CheckReferences (also run
	// by Translate) checks them, api_listeners included.
	proxyless, err := cache.NewSnapshot(v, res.ProxylessByType())
	if err != nil {
		return nil, 0, fmt.Errorf("new proxyless snapshot: %w", err)
	}
	if err := res.CheckReferences(); err != nil {
		return nil, 0, fmt.Errorf("snapshot %d is not consistent: %w", version, err)
	}
	// The same snapshots are set for every node. Build their version maps
	// (used by delta streams) now, so the cache never writes to a shared
	// snapshot.
	for _, s := range []*cache.Snapshot{snap, proxyless} {
		if err := s.ConstructVersionMap(); err != nil {
			return nil, 0, fmt.Errorf("snapshot %d: version map: %w", version, err)
		}
	}
	return &snapshots{sidecar: snap, proxyless: proxyless}, version, nil
}

// withInstances returns a copy of ir in which every live instance of a
// declared service is one more endpoint of it. Instances of undeclared
// services are ignored; an instance at an address and port the IR already
// lists is not added twice.
func (c *Controller) withInstances(ir envoy.IR, insts []ports.Instance) envoy.IR {
	idx := make(map[string]int, len(ir.Services))
	ir.Services = slices.Clone(ir.Services)
	for i, s := range ir.Services {
		idx[s.Name] = i
		ir.Services[i].Endpoints = slices.Clone(s.Endpoints)
	}
	for _, in := range insts {
		i, ok := idx[in.Service]
		if !ok {
			c.log.Debug("xds: ignoring instance of a service the IR does not declare",
				"service", in.Service, "address", in.Address, "port", in.Port)
			continue
		}
		ep := envoy.Endpoint{Address: in.Address, Port: uint32(in.Port)}
		if slices.ContainsFunc(ir.Services[i].Endpoints, func(e envoy.Endpoint) bool {
			return e.Address == ep.Address && e.Port == ep.Port
		}) {
			continue
		}
		ir.Services[i].Endpoints = append(ir.Services[i].Endpoints, ep)
	}
	return ir
}
