package audit

import (
	"context"
	"log/slog"
	"time"

	"github.com/gavel-dev/gavel/store"
)

// DefaultRetention is how long the audit trail keeps a decision.
const DefaultRetention = 30 * 24 * time.Hour

// Retain deletes audit records older than retention, at once and then
// every interval (default 24 h), until ctx ends. PostgreSQL drops whole
// daily partitions. A failure is logged and tried again at the next tick.
func Retain(ctx context.Context, st store.Audit, retention, interval time.Duration, log *slog.Logger) {
	if retention <= 0 {
		return
	}
	if interval <= 0 {
		interval = 24 * time.Hour
	}
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cutoff := time.Now().Add(-retention)
		n, err := st.PruneAudit(ctx, cutoff)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("audit retention: pruning failed; next try at the next interval", "err", err, "interval", interval.String())
		case n > 0:
			log.Info("audit retention: pruned old decisions", "records", n, "before", cutoff.Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
