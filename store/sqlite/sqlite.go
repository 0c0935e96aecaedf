// Package sqlite is the embedded store: gavel's persistence in one SQLite
// file (<data-dir>/gavel.db), through the pure-Go driver modernc.org/sqlite,
// so gavel needs no cgo and no database server. It is for one replica: its
// WatchActivations polls the file.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

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
	store.Register("sqlite",
		func(ctx context.Context, o store.Options) (store.Store, error) {
			return Open(ctx, o.SQLitePath, Options{Migrate: o.Migrate, Logger: o.Logger})
		},
		func(ctx context.Context, o store.Options) ([]int64, error) { return Migrate(ctx, o.SQLitePath) })
}

// Options configure the store; the zero value means defaults.
type Options struct {
	// Migrate applies pending migrations on open; without it a database
	// behind the schema is refused with store.ErrMigrationNeeded.
	Migrate bool
	// PollInterval is how often WatchActivations looks for new
	// activations (default 250ms).
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Store is the SQLite store. Writes go through one connection (SQLite has
// one writer at a time; WAL lets reads go on beside it), reads through a
// pool.
type Store struct {
	w, r *sql.DB
	opts Options
}

var _ store.Store = (*Store)(nil)

// Open opens (creating, mode 0600) the database file at path.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w, r, err := openDB(ctx, path)
	if err != nil {
		return nil, err
	}
	s := &Store{w: w, r: r, opts: opts}
	if opts.Migrate {
		applied, err := dbutil.Migrate(ctx, goose.DialectSQLite3, w, Migrations())
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite %s: %w", path, err)
		}
		if len(applied) > 0 {
			opts.Logger.Info("store: migrations applied", "kind", "sqlite", "path", path, "versions", applied)
		}
	} else if err := dbutil.Check(ctx, goose.DialectSQLite3, w, Migrations()); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return s, nil
}

// Migrate applies the pending migrations to the database at path and
// returns the versions applied.
func Migrate(ctx context.Context, path string) ([]int64, error) {
	w, r, err := openDB(ctx, path)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	defer r.Close()
	applied, err := dbutil.Migrate(ctx, goose.DialectSQLite3, w, Migrations())
	if err != nil {
		return applied, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return applied, nil
}

func openDB(ctx context.Context, path string) (w, r *sql.DB, err error) {
	if path == "" {
		return nil, nil, errors.New("open sqlite: no path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// Create the file ourselves so it is private: SQLite would use 0644.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	if w, err = sql.Open("sqlite", dsn); err != nil {
		return nil, nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	q.Add("_pragma", "query_only(1)")
	q.Del("_txlock")
	if r, err = sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode()); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return w, r, nil
}

// Kind is "sqlite".
func (s *Store) Kind() string { return "sqlite" }

// Ping reports whether the database file answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

func micros(t time.Time) int64 { return dbutil.Time(t).UnixMicro() }

func fromMicros(n int64) time.Time { return time.UnixMicro(n).UTC() }

// nullMicros stores a zero time as NULL.
func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(t), Valid: true}
}

func fromNullMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMicros(n.Int64)
}
