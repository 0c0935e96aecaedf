package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gavel-dev/gavel/store/storetest"
)

// auditload writes the trail of its rate to a real PostgreSQL: every record
// it reports written is a row with its own id and the input a Check of the
// mix renders, and it keeps the rate it was given.
func TestAuditLoadWritesTheTrail(t *testing.T) {
	url := storetest.PostgresSchema(t)
	var out, errb bytes.Buffer
	args := []string{"auditload", "--postgres-url", url, "--requests", "testdata/mix.jsonl", "--rate", "1000", "--duration", "1s"}
	if code := realMain(t.Context(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	m := regexp.MustCompile(`^(\d+) audit records written in [\d.]+ s \(\d+/s\), 0 dropped\n$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output %q", out.String())
	}
	written, _ := strconv.Atoi(m[1])
	if written < 800 || written > 1100 {
		t.Errorf("%d records written in 1 s at 1,000/s", written)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, ids, withInput int
	var input string
	err = conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT id), count(input), (SELECT convert_from(input, 'UTF8') FROM audit LIMIT 1) FROM audit`).
		Scan(&rows, &ids, &withInput, &input)
	if err != nil {
		t.Fatal(err)
	}
	if rows != written || ids != written || withInput != written {
		t.Errorf("reported %d written; the table has %d rows, %d ids, %d with an input", written, rows, ids, withInput)
	}
	if !strings.HasPrefix(input, `{"attributes":{`) || !strings.Contains(input, `"parsed_path":`) {
		t.Errorf("stored input is not a Check's input document: %.200s", input)
	}
}

func TestAuditLoadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--requests", "testdata/mix.jsonl"}, "--postgres-url is required"},
		{[]string{"--postgres-url", "postgres://x"}, "--requests is required"},
		{[]string{"--postgres-url", "postgres://x", "--requests", "testdata/mix.jsonl", "--rate", "0"}, "--rate must be positive"},
	} {
		var out, errb bytes.Buffer
		if code := realMain(t.Context(), append([]string{"auditload"}, tc.args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
	var out, errb bytes.Buffer
	args := []string{"auditload", "--postgres-url", "postgres://x", "--requests", "testdata/missing.jsonl"}
	if code := realMain(t.Context(), args, &out, &errb); code != 1 || !strings.Contains(errb.String(), "missing.jsonl") {
		t.Errorf("missing mix: exit %d, %q", code, errb.String())
	}
}
