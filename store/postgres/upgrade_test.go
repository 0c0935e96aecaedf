package postgres_test

import (
	"database/sql"
	"net/url"
	"slices"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/gavel-dev/gavel/store/postgres"
	"github.com/gavel-dev/gavel/store/storetest"
)

// A database at schema 1 with records in it takes migrations 2 (the trace
// columns, added on the partitioned parent) and 3 (the partial indexes):
// the old records read back with no trace, the new ones with theirs, a
// trace id finds its record, and the partition made before the upgrade has
// the new indexes and not the dropped ones.
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
	if err != nil || !slices.Equal(applied, []int64{2, 3}) {
		t.Fatalf("Migrate = %v, %v; want [2 3]", applied, err)
	}
	checkPartitionIndexes(t, u, "audit_old")
	s, err := postgres.Open(t.Context(), u, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.UpgradedAuditTrace(t, s)
}

// checkPartitionIndexes: a partition has exactly the audit indexes of the
// latest schema, the partial ones with their predicates, and a query for
// denials reads the partial index.
func checkPartitionIndexes(t *testing.T, u, part string) {
	t.Helper()
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexdef`, part)
	if err != nil {
		t.Fatal(err)
	}
	var defs []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		// Partition index names are made up by PostgreSQL; keep the rest.
		defs = append(defs, d[strings.Index(d, " ON "):])
	}
	want := []string{
		" ON public.audit_old USING btree (id, \"time\")",
		" ON public.audit_old USING btree (outcome, \"time\" DESC, id DESC) WHERE (outcome <> 'allow'::text)",
		" ON public.audit_old USING btree (principal, \"time\" DESC, id DESC)",
		" ON public.audit_old USING btree (source, \"time\" DESC, id DESC) WHERE (source <> ALL (ARRAY['envoy'::text, 'http'::text]))",
		" ON public.audit_old USING btree (\"time\" DESC, id DESC)",
		" ON public.audit_old USING btree (trace_id, \"time\" DESC, id DESC) WHERE (trace_id <> ''::text)",
		" ON public.audit_old USING gin (rule_ids)",
	}
	for i := range want {
		want[i] = strings.Replace(want[i], "public.", schemaOf(u)+".", 1)
	}
	slices.Sort(want)
	slices.Sort(defs)
	if !slices.Equal(defs, want) {
		t.Errorf("indexes of %s:\n got  %q\n want %q", part, defs, want)
	}
	// The partition holds one row: without seq scans the planner still
	// has to choose between the indexes, which is what is checked.
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	rows, err = conn.QueryContext(t.Context(), `EXPLAIN SELECT id FROM audit WHERE outcome = 'deny' ORDER BY time DESC, id DESC LIMIT 10`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		rows.Scan(&line)
		plan.WriteString(line + "\n")
	}
	if !strings.Contains(plan.String(), "outcome_time_id_idx") {
		t.Errorf("a query for denials does not read the partial index:\n%s", plan.String())
	}
}

func schemaOf(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return pu.Query().Get("search_path")
}
