// Package audit writes the audit trail: decisions are queued without
// blocking, written to the store in batches, spilled to an append-only local
// file while the store is unavailable, and replayed from it when the store
// is back. Writes are idempotent on the decision id, so a record replayed
// after a crash mid-write is stored once: none lost, none duplicated.
package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/breaker"
)

// Options configure a [Writer]. Zero values mean defaults.
type Options struct {
	Store store.Audit
	// SpillDir holds the spill segments (created, mode 0700).
	SpillDir string
	// QueueSize bounds the records waiting to be written (default 65,536).
	// A record that finds the queue full is dropped and counted: the
	// decision path never waits for the audit trail.
	QueueSize int
	// BatchSize is the most records per store write (default 1,000).
	BatchSize int
	// FlushInterval is the longest a record waits for a batch to fill
	// (default 100 ms).
	FlushInterval time.Duration
	// RetryInterval is how often a writer that is spilling checks the store
	// again (default 1 s).
	RetryInterval time.Duration
	// WriteTimeout bounds one store write (default 1 s): a store that does
	// not answer in time is treated as down and the batch spills, so the
	// queue keeps draining.
	WriteTimeout time.Duration
	// Breaker, when set, guards store writes: while it is open batches
	// spill at once instead of waiting for timeouts, and replays retry
	// transient errors with backoff.
	Breaker *breaker.Breaker
	Metrics *Metrics
	Logger  *slog.Logger
}

// Writer is the audit trail's writer. Record is safe for concurrent use;
// Run drives the writes.
type Writer struct {
	opts Options
	log  *slog.Logger
	m    *Metrics

	// The queue is a slice Run takes whole, not a channel: a send on a
	// channel can wake the writer for every decision, each wakeup a
	// scheduler round trip on the cores the Checks use. Run wakes on its
	// flush tick, or when a batch is full.
	qmu     sync.Mutex
	pending []policy.Record
	full    chan struct{} // pending reached BatchSize; never blocks Record

	spilling atomic.Bool // the store failed; new batches go to the spill
	mu       sync.Mutex  // guards the current segment
	seg      *os.File
	segName  string
	segSeq   int
}

// New returns a writer. Segments left by an earlier run are replayed once
// the store answers.
func New(opts Options) (*Writer, error) {
	if opts.Store == nil {
		return nil, errors.New("audit writer: no store")
	}
	if opts.SpillDir == "" {
		return nil, errors.New("audit writer: no spill directory")
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1 << 16
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = time.Second
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(opts.SpillDir, 0o700); err != nil {
		return nil, fmt.Errorf("audit spill directory: %w", err)
	}
	w := &Writer{opts: opts, log: opts.Logger, m: opts.Metrics, full: make(chan struct{}, 1)}
	segs, err := w.segments()
	if err != nil {
		return nil, err
	}
	for _, s := range segs {
		w.segSeq = max(w.segSeq, s.seq)
	}
	w.m.addSegments(int64(len(segs)))
	return w, nil
}

// Record renders r's input, when it has an InputFunc, and queues r. It
// never waits: when the queue is full the record is dropped and
// gavel_audit_dropped_total counts it.
//
// The input is rendered here, on the decision's goroutine, because that is
// where it costs a Check least: a few microseconds added to each decision
// (the encoder is bounded by policy.MaxAuditInput) move a Check's p99 far
// less than the same work done by the writer in a burst every flush, on the
// cores the Checks use; docs/benchmarks.md has the comparison.
func (w *Writer) Record(r policy.Record) {
	renderOne(&r)
	w.qmu.Lock()
	n := len(w.pending)
	if n >= w.opts.QueueSize {
		w.qmu.Unlock()
		w.m.dropped.Inc()
		return
	}
	w.pending = append(w.pending, r)
	w.qmu.Unlock()
	w.m.queued.Inc()
	if n+1 == w.opts.BatchSize {
		select {
		case w.full <- struct{}{}:
		default:
		}
	}
}

// take returns every queued record, oldest first, and empties the queue.
func (w *Writer) take() []policy.Record {
	w.qmu.Lock()
	recs := w.pending
	w.pending = nil
	w.qmu.Unlock()
	w.m.queued.Sub(float64(len(recs)))
	return recs
}

// Run writes queued records until ctx ends, then drains the queue (to the
// store, or to the spill) and returns. Two stages overlap: this goroutine
// batches records while another writes the previous batch, so neither
// waits for the other. Spilled records are replayed in the background while
// new ones keep flowing.
//
// The writer shares the CPU with the decisions it records, and Go has no
// goroutine priorities, so it wakes seldom: it takes the queue at each
// flush tick, or when a batch is full (the stores yield while they encode
// a batch).
func (w *Writer) Run(ctx context.Context) error {
	defer w.closeSegment() // after the last batch is written (defers run last first)
	var wg sync.WaitGroup
	wg.Go(func() { w.replayLoop(ctx) })
	batches := make(chan []policy.Record, 2)
	wctx := context.WithoutCancel(ctx) // the last batches are written after ctx ends
	wg.Go(func() {
		for b := range batches {
			w.write(wctx, b)
		}
	})
	defer wg.Wait()
	defer close(batches)
	flush := time.NewTicker(w.opts.FlushInterval)
	defer flush.Stop()
	for {
		done := false
		select {
		case <-ctx.Done():
			done = true // write what is queued, then return
		case <-w.full:
		case <-flush.C:
		}
		for recs := w.take(); len(recs) > 0; {
			n := min(len(recs), w.opts.BatchSize)
			batches <- recs[:n:n]
			recs = recs[n:]
		}
		if done {
			return nil
		}
	}
}

// replayLoop replays the spill at start and then every RetryInterval while
// there is something to replay.
func (w *Writer) replayLoop(ctx context.Context) {
	t := time.NewTicker(w.opts.RetryInterval)
	defer t.Stop()
	for {
		if w.spilling.Load() || w.m.segments.Load() > 0 {
			w.replay(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// write stores batch, or spills it when the store fails or is known down.
func (w *Writer) write(ctx context.Context, batch []policy.Record) {
	if len(batch) == 0 {
		return
	}
	if !w.spilling.Load() {
		err := w.store(ctx, batch)
		if err == nil {
			return
		}
		w.spilling.Store(true)
		w.log.Warn("audit store unavailable; spilling records to disk until it is back", "err", err,
			"spill_dir", w.opts.SpillDir)
	}
	if err := w.spill(batch); err != nil {
		w.m.dropped.Add(float64(len(batch)))
		w.log.Error("audit records lost: the store and the spill file both failed", "records", len(batch), "err", err)
	}
}

func (w *Writer) store(ctx context.Context, batch []policy.Record) error {
	return w.storeWith(ctx, batch, false)
}

// storeWith writes batch through the breaker, if any; retry (replays)
// retries transient errors with backoff.
func (w *Writer) storeWith(ctx context.Context, batch []policy.Record, retry bool) error {
	var n int
	write := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, w.opts.WriteTimeout)
		defer cancel()
		start := time.Now()
		var err error
		n, err = w.opts.Store.WriteAudit(ctx, batch)
		w.m.writeDuration.Observe(time.Since(start).Seconds())
		return err
	}
	var err error
	switch {
	case w.opts.Breaker == nil:
		err = write(ctx)
	case retry:
		err = w.opts.Breaker.Do(ctx, write)
	default:
		err = w.opts.Breaker.Execute(ctx, write)
	}
	if err != nil {
		w.m.writeErrors.Inc()
		return err
	}
	w.m.written.Add(float64(n))
	return nil
}

// renderOne fills in the record's Input from its InputFunc and lets go of
// what the function held (the request).
func renderOne(r *policy.Record) {
	if r.Input == nil && r.InputFunc != nil {
		r.Input, _ = r.InputFunc() // an input that cannot be rendered is left out; its digest stays
	}
	r.InputFunc = nil
}

// spill appends batch to the current segment, one JSON record per line,
// and syncs it.
func (w *Writer) spill(batch []policy.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seg == nil {
		w.segSeq++
		name := filepath.Join(w.opts.SpillDir, fmt.Sprintf("spill-%09d.jsonl", w.segSeq))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		w.seg, w.segName = f, name
		w.m.addSegments(1)
	}
	bw := bufio.NewWriter(w.seg)
	enc := json.NewEncoder(bw)
	for _, r := range batch {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := w.seg.Sync(); err != nil {
		return err
	}
	w.m.spilled.Add(float64(len(batch)))
	return nil
}

// closeSegment ends the current segment, so replay may read it.
func (w *Writer) closeSegment() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seg != nil {
		w.seg.Close()
		w.seg, w.segName = nil, ""
	}
}

type segment struct {
	seq  int
	path string
}

// segments lists the spill segments, oldest first.
func (w *Writer) segments() ([]segment, error) {
	entries, err := os.ReadDir(w.opts.SpillDir)
	if err != nil {
		return nil, fmt.Errorf("audit spill directory: %w", err)
	}
	var segs []segment
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, "spill-") || !strings.HasSuffix(name, ".jsonl") {
			continue
		}
		seq, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "spill-"), ".jsonl"))
		if err != nil {
			continue
		}
		segs = append(segs, segment{seq, filepath.Join(w.opts.SpillDir, name)})
	}
	slices.SortFunc(segs, func(a, b segment) int { return a.seq - b.seq })
	return segs, nil
}

// replay writes the spill segments to the store, oldest first, deleting
// each once all of it is stored, until none is left; then records go to the
// store again. It stops at the first failure and leaves the segments for
// the next try. The segment being appended to is closed first (new spills
// start a new one), so a segment is never read while it grows.
func (w *Writer) replay(ctx context.Context) {
	for ctx.Err() == nil {
		w.closeSegment()
		segs, err := w.segments()
		if err != nil {
			w.log.Error("audit spill unreadable", "err", err)
			return
		}
		if len(segs) == 0 {
			w.mu.Lock()
			if w.seg == nil && w.spilling.Swap(false) {
				w.log.Info("audit store is back; records are written to it again")
			}
			w.mu.Unlock()
			return
		}
		for _, s := range segs {
			n, err := w.replaySegment(ctx, s.path)
			if err != nil {
				if !errors.Is(err, errStoreDown) {
					w.log.Error("audit spill segment cannot be replayed; it is kept", "segment", s.path, "err", err)
				}
				return
			}
			if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				w.log.Error("audit spill segment replayed but not removed", "segment", s.path, "err", err)
				return
			}
			w.m.addSegments(-1)
			w.m.replayed.Add(float64(n))
			w.log.Info("audit spill segment replayed", "segment", filepath.Base(s.path), "records", n)
		}
	}
}

var errStoreDown = errors.New("audit store unavailable")

func (w *Writer) replaySegment(ctx context.Context, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	batch := make([]policy.Record, 0, w.opts.BatchSize)
	total := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := w.storeWith(ctx, batch, true); err != nil {
			return fmt.Errorf("%w: %w", errStoreDown, err)
		}
		total += len(batch)
		batch = batch[:0]
		return nil
	}
	for line := 1; sc.Scan(); line++ {
		var r policy.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			// A torn last line (a crash mid-append) is skipped; the batch
			// it belonged to was never acknowledged as spilled.
			w.log.Warn("audit spill: unreadable line skipped", "segment", path, "line", line, "err", err)
			w.m.dropped.Inc()
			continue
		}
		batch = append(batch, r)
		if len(batch) == w.opts.BatchSize {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return total, err
	}
	return total, flush()
}

// Metrics are the audit writer's Prometheus metrics.
type Metrics struct {
	queued        prometheus.Gauge
	dropped       prometheus.Counter
	written       prometheus.Counter
	spilled       prometheus.Counter
	replayed      prometheus.Counter
	writeErrors   prometheus.Counter
	writeDuration prometheus.Histogram
	spillSegments prometheus.Gauge

	segments atomic.Int64
}

// NewMetrics builds the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_audit_queue_length", Help: "Audit records waiting to be written."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_audit_dropped_total", Help: "Audit records lost: the queue was full, or the store and the spill file both failed."}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_audit_written_total", Help: "Audit records written to the store (replays of records already stored not counted)."}),
		spilled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_audit_spilled_total", Help: "Audit records written to the local spill file while the store was unavailable."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_audit_replayed_total", Help: "Audit records replayed from the spill file to the store."}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_audit_write_errors_total", Help: "Failed audit batch writes to the store."}),
		writeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gavel_audit_write_duration_seconds", Help: "Time to write one audit batch to the store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		spillSegments: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_audit_spill_segments", Help: "Spill segments on disk waiting to be replayed."}),
	}
	if reg != nil {
		reg.MustRegister(m.queued, m.dropped, m.written, m.spilled, m.replayed, m.writeErrors, m.writeDuration, m.spillSegments)
	}
	return m
}

// segments counts spill segments on disk, mirrored in the gauge.
func (m *Metrics) addSegments(n int64) {
	m.spillSegments.Set(float64(m.segments.Add(n)))
}
