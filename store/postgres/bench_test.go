package postgres_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store/postgres"
	"github.com/gavel-dev/gavel/store/storetest"
)

// benchRecords are audit records shaped like ext_authz decisions, with a
// recorded input of about 1 KiB.
func benchRecords(n, from int) []policy.Record {
	input := []byte(`{"attributes":{"request":{"http":{"method":"GET","path":"/api/v1/orders","headers":{"x-api-key":"[REDACTED]","user-agent":"` +
		strings.Repeat("x", 800) + `"}}}},"parsed_path":["api","v1","orders"]}`)
	now := time.Now().UTC()
	out := make([]policy.Record, n)
	for i := range out {
		out[i] = policy.Record{ID: fmt.Sprintf("bench-%09d", from+i), Time: now.Add(time.Duration(i) * time.Microsecond),
			Source: policy.SourceEnvoy, Principal: "orders-service", Action: "GET", Resource: "orders.svc/api/v1/orders",
			Outcome: "allow", Reasons: []string{"orders-service may GET on route orders"}, RuleIDs: []string{"http.allow"},
			Entry: "envoy/authz/allow", Revision: strings.Repeat("a", 64), Latency: 40 * time.Microsecond,
			CorrelationID: "8c1e1f1c-5f0e-4a4a-9a5e-0b8f5f6f7a10", Input: input}
	}
	return out
}

// BenchmarkWriteAudit writes audit batches as the audit writer does (COPY
// into a staging table, then INSERT ... ON CONFLICT DO NOTHING) and
// reports records per second.
func BenchmarkWriteAudit(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			st, err := postgres.Open(b.Context(), storetest.PostgresSchema(b), postgres.Options{Migrate: true, MaxConns: 4})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if _, err := st.WriteAudit(b.Context(), benchRecords(batch, i*batch)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "records/s")
		})
	}
}
