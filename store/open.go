package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// ErrMigrationNeeded refuses a database whose schema is behind this gavel
// when migrations are not applied on start.
var ErrMigrationNeeded = errors.New("database schema is behind this gavel: run `gavel migrate`")

// Options choose and configure a Store. The zero value is an SQLite store
// that does not migrate; gavel serve sets Migrate.
type Options struct {
	// PostgresURL selects PostgreSQL (postgres://user:pass@host/db?...).
	PostgresURL string
	// SQLitePath is the SQLite database file, used when PostgresURL is empty.
	SQLitePath string
	// MaxConns bounds the PostgreSQL pool (default 100).
	MaxConns int
	// Migrate applies pending migrations on open; without it a database
	// whose schema is behind is refused with ErrMigrationNeeded.
	Migrate bool
	Logger  *slog.Logger
}

// Opener opens one implementation of Store.
type Opener func(ctx context.Context, opts Options) (Store, error)

// Migrator applies an implementation's pending migrations and returns the
// versions it applied (none when the schema is up to date).
type Migrator func(ctx context.Context, opts Options) ([]int64, error)

type driver struct {
	open    Opener
	migrate Migrator
}

// The implementations register themselves (as database/sql drivers do)
// because they import this package for its types, so it cannot import them:
// a program that opens stores imports store/sqlite and store/postgres for
// their side effect.
var (
	driversMu sync.RWMutex
	drivers   = map[string]driver{}
)

// Register makes an implementation ("sqlite", "postgres") available to Open
// and Migrate. It is called from the implementation's init.
func Register(kind string, open Opener, migrate Migrator) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if _, dup := drivers[kind]; dup {
		panic("store: Register called twice for " + kind)
	}
	drivers[kind] = driver{open: open, migrate: migrate}
}

// Open opens the store opts choose: PostgreSQL when PostgresURL is set,
// SQLite at SQLitePath otherwise.
func Open(ctx context.Context, opts Options) (Store, error) {
	d, err := lookup(opts)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return d.open(ctx, opts)
}

// Migrate applies the pending migrations of the database opts choose and
// returns the versions applied.
func Migrate(ctx context.Context, opts Options) ([]int64, error) {
	d, err := lookup(opts)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return d.migrate(ctx, opts)
}

// KindOf is the implementation opts choose.
func KindOf(opts Options) string {
	if opts.PostgresURL != "" {
		return "postgres"
	}
	return "sqlite"
}

func lookup(opts Options) (driver, error) {
	kind := KindOf(opts)
	if kind == "sqlite" && opts.SQLitePath == "" {
		return driver{}, errors.New("open store: neither a PostgreSQL URL nor an SQLite path given")
	}
	driversMu.RLock()
	defer driversMu.RUnlock()
	d, ok := drivers[kind]
	if !ok {
		var have []string
		for k := range drivers {
			have = append(have, k)
		}
		sort.Strings(have)
		return driver{}, fmt.Errorf("open store: %s is not linked into this program (have %v): import github.com/gavel-dev/gavel/store/%s", kind, have, kind)
	}
	return d, nil
}
