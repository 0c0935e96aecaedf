package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const (
	// workersPerConn is the default number of workers sharing one gRPC
	// connection when --conns is not given.
	workersPerConn = 16
	// sampleBudget caps the raw latency samples kept across all workers
	// (8 bytes each). Beyond it percentiles come from the histograms.
	sampleBudget = 1 << 22
)

// runConfig describes one load run.
type runConfig struct {
	Addr        string
	Mix         []*authv3.CheckRequest
	Concurrency int           // number of workers
	Conns       int           // gRPC connections; 0 means one per workersPerConn workers
	Duration    time.Duration // measured period, after Warmup
	Warmup      time.Duration // excluded from the statistics
	Rate        float64       // requests per second; 0 means closed loop
	MaxRequests uint64        // cap on measured requests; 0 means none
	Timeout     time.Duration // per-request deadline; 0 means none
}

// normalize validates c and fills in defaults.
func (c runConfig) normalize() (runConfig, error) {
	switch {
	case len(c.Mix) == 0:
		return c, errors.New("empty request mix")
	case c.Concurrency < 1:
		return c, fmt.Errorf("concurrency must be at least 1, got %d", c.Concurrency)
	case c.Conns < 0:
		return c, fmt.Errorf("conns must not be negative, got %d", c.Conns)
	case c.Duration <= 0:
		return c, fmt.Errorf("duration must be positive, got %v", c.Duration)
	case c.Warmup < 0:
		return c, fmt.Errorf("warmup must not be negative, got %v", c.Warmup)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return c, fmt.Errorf("rate must be a positive number, got %v", c.Rate)
	case c.Timeout < 0:
		return c, fmt.Errorf("timeout must not be negative, got %v", c.Timeout)
	}
	if err := checkLoopback(c.Addr); err != nil {
		return c, err
	}
	if c.Conns == 0 {
		c.Conns = (c.Concurrency + workersPerConn - 1) / workersPerConn
	}
	c.Conns = min(c.Conns, c.Concurrency)
	return c, nil
}

// checkLoopback rejects addresses that are not on the loopback interface:
// the bench client and the null server speak plaintext gRPC, and the null
// server allows everything.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("address %q is not a loopback address; gavel-bench uses plaintext gRPC and only talks to 127.0.0.1, ::1 or localhost", addr)
}

// plan is the schedule shared by all workers of a run.
type plan struct {
	start, warmEnd, end time.Time
	maxRequests         uint64
	timeout             time.Duration

	// Closed loop: measured requests started so far (for maxRequests).
	taken atomic.Uint64

	// Fixed rate: ticket i is scheduled at start + i/rate. Tickets below
	// warmTickets fall into the warmup.
	rate        float64
	warmTickets uint64
	next        atomic.Uint64
}

func newPlan(c runConfig, start time.Time) *plan {
	p := &plan{
		start:       start,
		warmEnd:     start.Add(c.Warmup),
		end:         start.Add(c.Warmup + c.Duration),
		maxRequests: c.MaxRequests,
		timeout:     c.Timeout,
		rate:        c.Rate,
	}
	if p.rate > 0 {
		// First ticket scheduled at or after the end of the warmup.
		k := uint64(math.Ceil(c.Warmup.Seconds() * p.rate))
		for k > 0 && p.offset(k-1) >= c.Warmup {
			k--
		}
		for p.offset(k) < c.Warmup {
			k++
		}
		p.warmTickets = k
	}
	return p
}

// offset is the scheduled send time of ticket i relative to the start.
// Computing it from i (rather than accumulating an interval) keeps the
// schedule free of rounding drift.
func (p *plan) offset(i uint64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / p.rate)
}

// slot returns the scheduled time of ticket i, or false if the ticket falls
// outside the run.
func (p *plan) slot(i uint64) (time.Time, bool) {
	if p.maxRequests > 0 && i >= p.warmTickets && i-p.warmTickets >= p.maxRequests {
		return time.Time{}, false
	}
	t := p.start.Add(p.offset(i))
	return t, t.Before(p.end)
}

// worker sends requests on one goroutine and owns its counters, so the hot
// path needs no synchronization beyond the shared ticket counters.
type worker struct {
	client  authv3.AuthorizationClient
	mix     []*authv3.CheckRequest
	next    int // cursor into mix
	rec     *recorder
	allowed uint64
	denied  uint64
	queued  uint64 // fixed rate: measured requests that found no idle worker at their slot
	errs    map[codes.Code]uint64
}

// closedLoop sends back to back until the end of the run.
func (w *worker) closedLoop(ctx, rpcCtx context.Context, p *plan) {
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(p.end) {
			return
		}
		measured := !now.Before(p.warmEnd)
		if measured && p.maxRequests > 0 && p.taken.Add(1) > p.maxRequests {
			return
		}
		w.call(rpcCtx, p.timeout, now, measured)
	}
}

// rateLoop takes tickets from the shared fixed-rate schedule. A ticket
// taken after its slot (every worker was busy) is measured from the slot,
// so queueing in the client counts as latency and coordinated omission is
// corrected. A worker that is idle sleeps until the slot and measures from
// when it actually sends: Go timers can fire up to ~1ms late, and that
// overshoot is the client's own, not the server's.
func (w *worker) rateLoop(ctx, rpcCtx context.Context, p *plan) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		i := p.next.Add(1) - 1
		slot, ok := p.slot(i)
		if !ok {
			return
		}
		measured := i >= p.warmTickets
		from := slot
		if wait := time.Until(slot); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			from = time.Now()
		} else if measured {
			w.queued++
		}
		w.call(rpcCtx, p.timeout, from, measured)
	}
}

// call sends the next request of the mix; its latency is measured from
// "from", which is also where the deadline starts.
func (w *worker) call(ctx context.Context, timeout time.Duration, from time.Time, measured bool) {
	req := w.mix[w.next]
	w.next++
	if w.next == len(w.mix) {
		w.next = 0
	}
	var resp *authv3.CheckResponse
	var err error
	if timeout > 0 {
		deadline := from.Add(timeout)
		if time.Now().Before(deadline) {
			cctx, cancel := context.WithDeadline(ctx, deadline)
			resp, err = w.client.Check(cctx, req)
			cancel()
		} else {
			// Already late by more than the timeout while queued for
			// a worker: it would fail anyway, so don't send it.
			err = status.Error(codes.DeadlineExceeded, "deadline passed before send")
		}
	} else {
		resp, err = w.client.Check(ctx, req)
	}
	done := time.Now()
	if !measured {
		return
	}
	if err != nil {
		w.errs[status.Code(err)]++
		return
	}
	w.rec.record(done.Sub(from))
	if resp.GetStatus().GetCode() == 0 {
		w.allowed++
	} else {
		w.denied++
	}
}

// runLoad dials the server, drives the configured load and returns the
// report. Cancelling ctx stops the run early; the report then covers what
// was measured so far.
func runLoad(ctx context.Context, cfg runConfig) (*report, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	conns := make([]*grpc.ClientConn, 0, cfg.Conns)
	defer func() {
		for _, cc := range conns {
			cc.Close()
		}
	}()
	for range cfg.Conns {
		cc, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", cfg.Addr, err)
		}
		conns = append(conns, cc)
	}
	// One request per connection before the clock starts: connection
	// setup is not measured and an unusable server fails fast.
	for i, cc := range conns {
		if err := probe(ctx, cc, cfg.Mix[0]); err != nil {
			return nil, fmt.Errorf("probe %s (connection %d): %w", cfg.Addr, i+1, err)
		}
	}

	perWorker := sampleBudget / cfg.Concurrency
	if cfg.Rate > 0 {
		expected := math.Ceil(cfg.Duration.Seconds()*cfg.Rate) + 1
		perWorker = int(min(float64(perWorker), expected))
	}
	if cfg.MaxRequests > 0 {
		perWorker = int(min(uint64(perWorker), cfg.MaxRequests))
	}
	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		workers[i] = &worker{
			client: authv3.NewAuthorizationClient(conns[i%len(conns)]),
			mix:    cfg.Mix,
			next:   i * len(cfg.Mix) / cfg.Concurrency,
			rec:    newRecorder(perWorker),
			errs:   make(map[codes.Code]uint64),
		}
	}

	// In-flight requests finish (or time out) even if ctx is cancelled.
	rpcCtx := context.WithoutCancel(ctx)
	start := time.Now()
	p := newPlan(cfg, start)
	cpu := startCPUWatch(cfg.Warmup)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			if cfg.Rate > 0 {
				w.rateLoop(ctx, rpcCtx, p)
			} else {
				w.closedLoop(ctx, rpcCtx, p)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(p.warmEnd)
	cpuUser, cpuSys, cpuOK := cpu.stop()

	rep := newReport(cfg, workers, elapsed)
	if cpuOK {
		rep.ClientCPUUser = round(cpuUser.Seconds(), 3)
		rep.ClientCPUSys = round(cpuSys.Seconds(), 3)
	}
	rep.Interrupted = ctx.Err() != nil
	return rep, nil
}

// probe sends one request and fails if the server is unreachable or does
// not implement the Authorization service. Other gRPC errors are left to
// the run to count.
func probe(ctx context.Context, cc *grpc.ClientConn, req *authv3.CheckRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := authv3.NewAuthorizationClient(cc).Check(ctx, req)
	switch status.Code(err) {
	case codes.Unavailable, codes.Unimplemented, codes.DeadlineExceeded, codes.Canceled:
		return err
	}
	return nil
}

// cpuWatch measures the process CPU time over the measured period.
type cpuWatch struct {
	timer *time.Timer
	base  chan cpuTimes
	start cpuTimes
	ok    bool
}

type cpuTimes struct{ user, sys time.Duration }

// startCPUWatch samples the CPU time now and again after warmup.
func startCPUWatch(warmup time.Duration) *cpuWatch {
	w := &cpuWatch{base: make(chan cpuTimes, 1)}
	var ok bool
	w.start.user, w.start.sys, ok = processCPU()
	if !ok {
		return w
	}
	w.ok = true
	if warmup > 0 {
		w.timer = time.AfterFunc(warmup, func() {
			var t cpuTimes
			t.user, t.sys, _ = processCPU()
			w.base <- t
		})
	}
	return w
}

// stop returns the CPU time used since the end of the warmup (or since the
// start, if the run ended during the warmup).
func (w *cpuWatch) stop() (user, sys time.Duration, ok bool) {
	if !w.ok {
		return 0, 0, false
	}
	base := w.start
	if w.timer != nil && !w.timer.Stop() {
		base = <-w.base
	}
	var now cpuTimes
	now.user, now.sys, _ = processCPU()
	return now.user - base.user, now.sys - base.sys, true
}
