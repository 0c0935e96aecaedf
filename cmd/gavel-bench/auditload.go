package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gavel-dev/gavel/extauthz"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store/audit"
	"github.com/gavel-dev/gavel/store/postgres"
)

// auditLoad writes to PostgreSQL the audit trail a gavel replica writes
// while it answers rate Checks per second, without answering any: the same
// records (each input rendered from the request mix as a Check renders it,
// before the load starts), through gavel's own audit writer and PostgreSQL
// store, in the same batches. Run next to an audit-off server under the
// same fixed-rate load, it shows what the database's share of the audit
// trail costs the server's Checks on this machine, apart from gavel's own
// share (building, rendering and queueing each record).
type auditLoad struct {
	store   *postgres.Store
	writer  *audit.Writer
	reg     *prometheus.Registry
	records []policy.Record // templates, one per request of the mix
}

func newAuditLoad(ctx context.Context, url string, mix []*mixInput, spillDir string) (*auditLoad, error) {
	st, err := postgres.Open(ctx, url, postgres.Options{MaxConns: 4, Migrate: true})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	w, err := audit.New(audit.Options{
		Store:    st,
		SpillDir: spillDir,
		Metrics:  audit.NewMetrics(reg),
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	l := &auditLoad{store: st, writer: w, reg: reg}
	for _, m := range mix {
		l.records = append(l.records, m.record())
	}
	return l, nil
}

// mixInput is what a record of one request of the mix carries: its method,
// host and path, and its input as a Check renders it for the trail.
type mixInput struct {
	method, resource string
	input            []byte
}

func renderMix(path string) ([]*mixInput, error) {
	reqs, err := loadMix(path)
	if err != nil {
		return nil, err
	}
	out := make([]*mixInput, 0, len(reqs))
	for i, req := range reqs {
		in, err := extauthz.BuildInput(req, extauthz.InputOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: request %d: %w", path, i+1, err)
		}
		js, err := policy.RedactedInput(in, policy.Redaction{})
		if err != nil {
			return nil, fmt.Errorf("%s: request %d: %w", path, i+1, err)
		}
		h := req.GetAttributes().GetRequest().GetHttp()
		out = append(out, &mixInput{method: h.GetMethod(), resource: h.GetHost() + h.GetPath(), input: js})
	}
	return out, nil
}

func (r *mixInput) record() policy.Record {
	sum := sha256.Sum256(r.input)
	return policy.Record{
		Source:      policy.SourceEnvoy,
		Action:      r.method,
		Resource:    r.resource,
		Outcome:     "allow",
		Entry:       "envoy/authz/allow",
		Revision:    "auditload",
		Cached:      true,
		InputDigest: hex.EncodeToString(sum[:]),
		Input:       r.input,
	}
}

// run records rate records per second until ctx ends, in steps of tick,
// then lets the writer drain and returns how many were written and
// dropped.
func (l *auditLoad) run(ctx context.Context, rate float64, tick time.Duration) (written, dropped float64, err error) {
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- l.writer.Run(wctx) }()
	t := time.NewTicker(tick)
	start := time.Now()
	sent := 0
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case now := <-t.C:
			due := int(rate * now.Sub(start).Seconds())
			for ; sent < due; sent++ {
				rec := l.records[sent%len(l.records)]
				rec.ID = policy.NewDecisionID()
				rec.Time = time.Now().UTC()
				l.writer.Record(rec)
			}
		}
	}
	t.Stop()
	stop()
	err = <-done
	l.store.Close()
	if err != nil {
		return 0, 0, err
	}
	return l.counter("gavel_audit_written_total"), l.counter("gavel_audit_dropped_total"), nil
}

func (l *auditLoad) counter(name string) float64 {
	mfs, _ := l.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name && mf.GetType() == dto.MetricType_COUNTER && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func cmdAuditLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("auditload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("postgres-url", "", "the PostgreSQL the records go to (migrated on open, as gavel serve --migrate does)")
	mixPath := fs.String("requests", "", "the request mix (JSONL) whose inputs the records carry")
	rate := fs.Float64("rate", 2000, "records per second")
	duration := fs.Duration("duration", 0, "stop after this long (0: when interrupted)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *url == "":
		return usagef("--postgres-url is required")
	case *mixPath == "":
		return usagef("--requests is required")
	case *rate <= 0:
		return usagef("--rate must be positive, got %v", *rate)
	}
	mix, err := renderMix(*mixPath)
	if err != nil {
		return err
	}
	if len(mix) == 0 {
		return fmt.Errorf("%s: no requests", *mixPath)
	}
	spill, err := os.MkdirTemp("", "gavel-auditload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(spill)
	l, err := newAuditLoad(ctx, *url, mix, spill)
	if err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	start := time.Now()
	written, dropped, err := l.run(ctx, *rate, 10*time.Millisecond)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%.0f audit records written in %.1f s (%.0f/s), %.0f dropped\n",
		written, time.Since(start).Seconds(), written/time.Since(start).Seconds(), dropped)
	return err
}
