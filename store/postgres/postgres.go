// Package postgres is the store for several replicas: gavel's persistence
// in PostgreSQL through pgx (a pgxpool, --postgres-max-conns connections).
// The audit trail is partitioned by day and written in batches with COPY;
// bundle activations reach every replica through LISTEN/NOTIFY, with
// polling as a backstop.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/internal/dbutil"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations is the schema, as goose migrations.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

func init() {
	store.Register("postgres",
		func(ctx context.Context, o store.Options) (store.Store, error) {
			return Open(ctx, o.PostgresURL, Options{MaxConns: o.MaxConns, Migrate: o.Migrate, Logger: o.Logger})
		},
		func(ctx context.Context, o store.Options) ([]int64, error) { return Migrate(ctx, o.PostgresURL) })
}

// Channel is the NOTIFY channel activations are announced on.
const Channel = "gavel_activations"

// Options configure the store; the zero value means defaults.
type Options struct {
	// MaxConns bounds the pool (default 100).
	MaxConns int
	// Migrate applies pending migrations on open; without it a database
	// behind the schema is refused with store.ErrMigrationNeeded.
	Migrate bool
	// PollInterval is how often WatchActivations reads the activations
	// table besides listening (default 3s): the backstop for a lost
	// notification.
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Store is the PostgreSQL store.
type Store struct {
	pool   *pgxpool.Pool
	opts   Options
	schema string // current_schema(), to tell our notifications apart

	mu    sync.Mutex
	parts map[string]bool // audit partitions known to exist, by name
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (the URL's search_path, if any,
// chooses the schema).
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 100
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 3 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	pool, where, err := connect(ctx, url, opts.MaxConns)
	if err != nil {
		return nil, err
	}
	s := &Store{pool: pool, opts: opts, parts: map[string]bool{}}
	if opts.Migrate {
		applied, err := migrate(ctx, pool)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres %s: %w", where, err)
		}
		if len(applied) > 0 {
			opts.Logger.Info("store: migrations applied", "kind", "postgres", "database", where, "versions", applied)
		}
	} else {
		db := stdlib.OpenDBFromPool(pool)
		err := dbutil.Check(ctx, goose.DialectPostgres, db, Migrations())
		db.Close()
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres %s: %w", where, err)
		}
	}
	if err := pool.QueryRow(ctx, `SELECT COALESCE(current_schema(), '')`).Scan(&s.schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", where, err)
	}
	now := time.Now().UTC()
	if err := s.ensurePartitions(ctx, []time.Time{now, now.AddDate(0, 0, 1)}); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", where, err)
	}
	return s, nil
}

// Migrate applies the pending migrations to the database at url and
// returns the versions applied. Replicas migrating at once take turns (a
// session advisory lock).
func Migrate(ctx context.Context, url string) ([]int64, error) {
	pool, where, err := connect(ctx, url, 2)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	applied, err := migrate(ctx, pool)
	if err != nil {
		return applied, fmt.Errorf("postgres %s: %w", where, err)
	}
	return applied, nil
}

func migrate(ctx context.Context, pool *pgxpool.Pool) ([]int64, error) {
	// The lock is per schema, so gavels on different schemas of one
	// database do not wait for each other; a waiting one retries every
	// second for up to five minutes.
	var schema string
	if err := pool.QueryRow(ctx, `SELECT COALESCE(current_schema(), '')`).Scan(&schema); err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte("gavel migrations " + schema))
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return dbutil.Migrate(ctx, goose.DialectPostgres, db, Migrations(), goose.WithSessionLocker(locker))
}

// connect opens a pool and checks it answers. Errors name the host and
// database, never the password.
func connect(ctx context.Context, url string, maxConns int) (*pgxpool.Pool, string, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in parse errors.
		return nil, "", fmt.Errorf("postgres URL: %w", err)
	}
	cfg.MaxConns = int32(maxConns)
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Without one, a dial to a black-holed server holds a pool slot for
		// minutes; the URL's connect_timeout overrides it.
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, where, fmt.Errorf("connect to postgres %s: %w", where, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, where, fmt.Errorf("can't connect to postgres %s: %w", where, err)
	}
	return pool, where, nil
}

// Kind is "postgres".
func (s *Store) Kind() string { return "postgres" }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// tx runs fn in a transaction.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// nullTime stores a zero time as NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = dbutil.Time(t)
	return &t
}

func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
