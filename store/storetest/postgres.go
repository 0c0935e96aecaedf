package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresAdminURL is the test server: GAVEL_TEST_POSTGRES_URL, or the
// local one (trust auth, database test).
func PostgresAdminURL() string {
	if u := os.Getenv("GAVEL_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// PostgresSchema creates an empty schema on the test server, dropped when
// t ends, and returns a URL whose connections use it. Without a server the
// test fails, unless GAVEL_SKIP_POSTGRES=1.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, PostgresAdminURL())
	if err != nil {
		if os.Getenv("GAVEL_SKIP_POSTGRES") == "1" {
			t.Skipf("PostgreSQL unreachable and GAVEL_SKIP_POSTGRES=1: %v", err)
		}
		t.Fatalf("PostgreSQL unreachable (start it, or set GAVEL_SKIP_POSTGRES=1 to skip): %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "gavel_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, PostgresAdminURL())
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(PostgresAdminURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
