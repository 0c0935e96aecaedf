// Package decisions serves the audit trail: GET /v1/decisions lists
// decision records, newest first, filtered and paginated by cursor, and
// GET /v1/decisions/{id} returns one.
package decisions

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gavel-dev/gavel/api/internal/reply"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// MaxLimit is the most records one page holds.
const MaxLimit = 1000

// Handler serves the audit trail from a store. It expects an authenticator
// in front (role viewer).
//
//	GET /v1/decisions?source=&outcome=&principal=&rule=&revision=&trace_id=&since=&until=&limit=&cursor=
//	GET /v1/decisions/{id}
//
// since and until are RFC 3339 times or durations back from now ("1h");
// since is inclusive, until exclusive. The answer's "next" is the cursor of
// the following page, absent on the last one. trace_id is a W3C trace id
// (32 hex digits): the records of the decisions made in that trace.
func Handler(st store.Audit, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/decisions", func(w http.ResponseWriter, r *http.Request) {
		q, err := ParseQuery(r.URL.Query(), time.Now())
		if err != nil {
			reply.JSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		page, err := st.Decisions(r.Context(), q)
		if err != nil {
			log.Error("audit trail query failed", "err", err)
			reply.JSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the audit store did not answer: " + err.Error()})
			return
		}
		if page.Records == nil {
			page.Records = []policy.Record{}
		}
		reply.JSON(w, http.StatusOK, page)
	})
	mux.HandleFunc("GET /v1/decisions/{id}", func(w http.ResponseWriter, r *http.Request) {
		rec, err := st.Decision(r.Context(), r.PathValue("id"))
		switch {
		case errors.Is(err, store.ErrNotFound):
			reply.JSON(w, http.StatusNotFound, map[string]string{"error": "no decision " + r.PathValue("id") + " in the audit trail"})
		case err != nil:
			log.Error("audit trail read failed", "err", err)
			reply.JSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the audit store did not answer: " + err.Error()})
		default:
			reply.JSON(w, http.StatusOK, rec)
		}
	})
	return mux
}

// ParseQuery reads the listing's query parameters; unknown parameters and
// bad values are errors that name the parameter.
func ParseQuery(v url.Values, now time.Time) (store.DecisionQuery, error) {
	var q store.DecisionQuery
	for k := range v {
		switch k {
		case "source", "outcome", "principal", "rule", "revision", "trace_id", "since", "until", "limit", "cursor":
		default:
			return q, fmt.Errorf("unknown parameter %q (want source, outcome, principal, rule, revision, trace_id, since, until, limit, cursor)", k)
		}
		if len(v[k]) > 1 {
			return q, fmt.Errorf("parameter %q given %d times", k, len(v[k]))
		}
	}
	q.Source, q.Outcome, q.Principal = v.Get("source"), v.Get("outcome"), v.Get("principal")
	q.Rule, q.Revision, q.Cursor = v.Get("rule"), v.Get("revision"), v.Get("cursor")
	if t := v.Get("trace_id"); t != "" {
		if !isTraceID(t) {
			return q, fmt.Errorf("trace_id %q: want a W3C trace id, 32 hex digits (the second field of a traceparent)", t)
		}
		q.TraceID = strings.ToLower(t)
	}
	var err error
	if q.Since, err = parseTime("since", v.Get("since"), now); err != nil {
		return q, err
	}
	if q.Until, err = parseTime("until", v.Get("until"), now); err != nil {
		return q, err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, fmt.Errorf("since (%s) is not before until (%s)", q.Since.Format(time.RFC3339), q.Until.Format(time.RFC3339))
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, fmt.Errorf("limit %q: want a number from 1 to %d", s, MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}

func isTraceID(s string) bool {
	if len(s) != 32 || strings.Trim(s, "0") == "" {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

func parseTime(name, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time (2026-11-25T10:00:00Z) or a duration back from now (1h)", name, s)
}
