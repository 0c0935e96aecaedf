package postgres_test

import (
	"database/sql"
	"slices"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/gavel-dev/gavel/store/postgres"
	"github.com/gavel-dev/gavel/store/storetest"
)

// A database at schema 1 with records in it takes migration 2 (the trace
// columns, added on the partitioned parent): the old records read back
// with no trace, the new ones with theirs, and a trace id finds its
// record.
func TestStoreUpgradeAuditTrace(t *testing.T) {
	u := storetest.PostgresSchema(t)
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, postgres.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE audit_old PARTITION OF audit FOR VALUES FROM ('2020-01-01') TO ('2020-01-02')`,
		`INSERT INTO audit (id, time, source, outcome) VALUES ('old', '2020-01-01T10:00:00Z', 'envoy', 'allow')`,
	} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	applied, err := postgres.Migrate(t.Context(), u)
	if err != nil || !slices.Equal(applied, []int64{2}) {
		t.Fatalf("Migrate = %v, %v; want [2]", applied, err)
	}
	s, err := postgres.Open(t.Context(), u, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.UpgradedAuditTrace(t, s)
}
