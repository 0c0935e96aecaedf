package decisions_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/api/decisions"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/sqlite"
)

func TestDecisionsAPI(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "gavel.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	var recs []policy.Record
	for i := range 30 {
		r := policy.Record{ID: "d" + string(rune('a'+i%26)) + string(rune('0'+i/26)), Time: base.Add(time.Duration(i) * time.Minute),
			Source: policy.SourceHook, Outcome: "allow", Principal: "ada", RuleIDs: []string{"x"}, Revision: "rev1"}
		if i == 7 {
			r.TraceID, r.SpanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		}
		if i%3 == 0 {
			r.Outcome, r.RuleIDs, r.Source = "deny", []string{"shell.rm-root", "x"}, policy.SourceEnvoy
		}
		recs = append(recs, r)
	}
	if _, err := st.WriteAudit(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(decisions.Handler(st, nil))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// Every deny, by rule, in pages of 4, newest first.
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		code, body := get("/v1/decisions?outcome=deny&rule=shell.rm-root&limit=4" + cursor)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var page store.DecisionPage
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			if r.Outcome != "deny" {
				t.Fatalf("filter let %+v through", r)
			}
			ids = append(ids, r.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = "&cursor=" + url.QueryEscape(page.Next)
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if len(ids) != 10 || ids[0] != recs[27].ID || ids[9] != recs[0].ID {
		t.Fatalf("denies %v", ids)
	}
	code, body := get("/v1/decisions?since=" + url.QueryEscape(base.Add(25*time.Minute).Format(time.RFC3339Nano)) + "&source=hook")
	if code != 200 || strings.Count(body, `"id"`) != 4 {
		t.Fatalf("since+source: %d %s", code, body)
	}
	if code, body := get("/v1/decisions/" + recs[5].ID); code != 200 || !strings.Contains(body, recs[5].ID) {
		t.Fatalf("one: %d %s", code, body)
	}
	// A trace leads to its record (the id is matched in either case).
	code, body = get("/v1/decisions?trace_id=4BF92F3577B34DA6A3CE929D0E0E4736")
	if code != 200 || strings.Count(body, `"id"`) != 1 || !strings.Contains(body, recs[7].ID) || !strings.Contains(body, `"span_id": "00f067aa0ba902b7"`) {
		t.Fatalf("trace_id: %d %s", code, body)
	}
	if code, _ := get("/v1/decisions/nope"); code != 404 {
		t.Fatalf("unknown id: %d", code)
	}
	for q, want := range map[string]string{
		"?limit=0":             "limit",
		"?limit=5000":          "limit",
		"?since=yesterday":     "since",
		"?outcome=a&outcome=b": "given 2 times",
		"?colour=red":          `unknown parameter`,
		"?since=1h&until=2h":   "not before until",
		"?trace_id=xyz":        "trace_id",
		"?trace_id=00000000000000000000000000000000": "trace_id",
	} {
		code, body := get("/v1/decisions" + q)
		if code != 400 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s, want 400 naming %q", q, code, body, want)
		}
	}
	if code, body := get("/v1/decisions?cursor=garbage"); code == 200 {
		t.Errorf("a garbage cursor was accepted: %s", body)
	}
}
