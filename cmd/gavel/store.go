package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/gavel-dev/gavel/api"
	"github.com/gavel-dev/gavel/store"
	_ "github.com/gavel-dev/gavel/store/postgres" // store.Open's PostgreSQL
	_ "github.com/gavel-dev/gavel/store/sqlite"   // store.Open's SQLite
)

// storeConfig is where gavel keeps its data: PostgreSQL when a URL is
// given, else the SQLite file <data-dir>/gavel.db.
type storeConfig struct {
	enabled     bool // set by flags: only the commands that have them open a store
	postgresURL string
	maxConns    int
	migrate     bool
}

func (c *storeConfig) flags(cmd *cobra.Command) {
	c.enabled = true
	f := cmd.Flags()
	f.StringVar(&c.postgresURL, "postgres-url", "", "PostgreSQL URL (postgres://user:pass@host:5432/db); the store is the SQLite file <data-dir>/gavel.db when empty")
	f.IntVar(&c.maxConns, "postgres-max-conns", 100, "PostgreSQL connection pool size")
	f.BoolVar(&c.migrate, "migrate", true, "apply pending database migrations on start (with false, a database whose schema is behind is refused: run gavel migrate)")
}

// options are the store.Options for a gavel with data dir dataDir.
func (c *storeConfig) options(dataDir string, log *slog.Logger) store.Options {
	return store.Options{
		PostgresURL: c.postgresURL,
		SQLitePath:  filepath.Join(dataDir, "gavel.db"),
		MaxConns:    c.maxConns,
		Migrate:     c.migrate,
		Logger:      log,
	}
}

// open opens the store, or returns nil for a command without one.
func (c *storeConfig) open(ctx context.Context, dataDir string, log *slog.Logger) (store.Store, error) {
	if !c.enabled {
		return nil, nil
	}
	if c.maxConns < 1 {
		return nil, fmt.Errorf("--postgres-max-conns %d: want at least 1", c.maxConns)
	}
	s, err := store.Open(ctx, c.options(dataDir, log))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	log.Info("store open", "kind", s.Kind())
	return s, nil
}

// storeReady adds a "store" check to ready: "ok" or why the database does
// not answer. It does not make gavel unready: decisions go on without the
// store (audit records queue until it is back).
func storeReady(ready func() api.Status, s store.Store) func() api.Status {
	if s == nil {
		return ready
	}
	return func() api.Status {
		st := api.Status{Ready: true}
		if ready != nil {
			st = ready()
		}
		if st.Checks == nil {
			st.Checks = map[string]string{}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st.Checks["store"] = "ok"
		if err := s.Ping(ctx); err != nil {
			st.Checks["store"] = err.Error()
		}
		return st
	}
}
