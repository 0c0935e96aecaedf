// Package dbutil is what the SQLite and PostgreSQL stores share: running
// their embedded goose migrations, and the audit trail's page cursor.
package dbutil

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// Migrate applies the pending migrations in fsys and returns the versions
// applied. A failure names the migration: "migration 2 failed: ...".
func Migrate(ctx context.Context, dialect goose.Dialect, db *sql.DB, fsys fs.FS, opts ...goose.ProviderOption) ([]int64, error) {
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	res, err := p.Up(ctx)
	var applied []int64
	for _, r := range res {
		applied = append(applied, r.Source.Version)
	}
	if err != nil {
		var pe *goose.PartialError
		if errors.As(err, &pe) {
			for _, r := range pe.Applied {
				applied = append(applied, r.Source.Version)
			}
			return applied, fmt.Errorf("migration %d failed: %w", pe.Failed.Source.Version, pe.Err)
		}
		return applied, fmt.Errorf("migrate: %w", err)
	}
	return applied, nil
}

// Check refuses a database with migrations in fsys it has not applied,
// with store.ErrMigrationNeeded.
func Check(ctx context.Context, dialect goose.Dialect, db *sql.DB, fsys fs.FS) error {
	p, err := goose.NewProvider(dialect, db, fsys)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if pending {
		return fmt.Errorf("schema version %d, gavel needs %d: %w", max(current, 0), target, store.ErrMigrationNeeded)
	}
	return nil
}

// Limit is q's page size: 100 by default, at most 1000.
func Limit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}

// Time is how the stores keep times: UTC, to the microsecond (PostgreSQL's
// precision, so both stores return what they were given alike).
func Time(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// EncodeCursor is the opaque position after the record at (t, id).
func EncodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixMicro(), 10) + ":" + id))
}

// DecodeCursor reads a cursor EncodeCursor made.
func DecodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("invalid cursor %q", c)
	}
	us, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil {
		return time.Time{}, "", fmt.Errorf("invalid cursor %q", c)
	}
	return time.UnixMicro(n).UTC(), id, nil
}

// Page cuts rows fetched with limit+1 to a page, with the cursor of its
// last record when there are more.
func Page(recs []policy.Record, limit int) store.DecisionPage {
	if len(recs) <= limit {
		return store.DecisionPage{Records: recs}
	}
	recs = recs[:limit]
	last := recs[limit-1]
	return store.DecisionPage{Records: recs, Next: EncodeCursor(last.Time, last.ID)}
}

// Nil makes an empty slice nil, so records read back compare equal to the
// ones written whatever the column held.
func Nil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
