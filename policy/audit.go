package policy

import (
	"encoding/json"
	"sync"
	"time"
)

// Sources name where a decision was asked for; they label audit records and
// metrics.
const (
	SourceEnvoy    = "envoy"    // ext_authz Check over gRPC
	SourceHTTP     = "http"     // the HTTP authorization endpoints (nginx, Traefik, Envoy HTTP)
	SourceHook     = "hook"     // a coding agent's hook event
	SourceMCP      = "mcp"      // an agent asking through the MCP server
	SourceValidate = "validate" // the validation service
	SourceAPI      = "api"      // the HTTP API refusing a caller (401, 403)
)

// Record is one decision as the audit trail keeps it.
type Record struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Source string    `json:"source"`
	// Principal is who asked (an API key's principal, a token's subject).
	Principal string `json:"principal,omitempty"`
	// Action and Resource summarise what was asked: "PreToolUse Bash" and
	// the command, "GET" and the path.
	Action   string `json:"action,omitempty"`
	Resource string `json:"resource,omitempty"`
	// Outcome is allow, deny, ask or no_opinion; "error" when no decision
	// could be made (ErrorCode says why, and the caller failed closed).
	Outcome   string   `json:"outcome"`
	ErrorCode string   `json:"error_code,omitempty"`
	Reasons   []string `json:"reasons,omitempty"`
	RuleIDs   []string `json:"rule_ids,omitempty"`
	Entry     string   `json:"entry,omitempty"`
	Revision  string   `json:"revision,omitempty"`
	DryRun    bool     `json:"dry_run,omitempty"`
	Cached    bool     `json:"cached,omitempty"`
	// Latency is how long the decision took, as the caller saw it.
	Latency time.Duration `json:"latency_ns"`
	// CorrelationID joins records of one action across events (a hook's
	// session, tool use and event; Envoy's x-request-id).
	CorrelationID string `json:"correlation_id,omitempty"`
	// TraceID is the W3C trace id (32 hex digits) of the trace the
	// decision belongs to: its own span's when gavel traces, else the one
	// the caller gave, so a trace leads to its record and back.
	TraceID string `json:"trace_id,omitempty"`
	// SpanID is the decision's own span (16 hex digits), when it was
	// traced and sampled.
	SpanID string `json:"span_id,omitempty"`
	// InputDigest is the hex sha256 of the input document the policy saw.
	InputDigest string `json:"input_digest,omitempty"`
	// Input is the input document as JSON, with what the policy marks
	// sensitive redacted; it may be omitted for size.
	Input []byte `json:"input,omitempty"`
	// InputFunc, when set and Input is not, renders Input. A sink that
	// keeps the input calls it; one that does not (the audit trail keeping
	// only denied inputs, say) drops it unrendered.
	InputFunc func() ([]byte, error) `json:"-"`
}

// Sink receives audit records. Record must not block a decision: an
// implementation queues and writes asynchronously, and drops (and counts)
// what it cannot queue.
type Sink interface {
	Record(Record)
}

// Sinks fans a record out to several sinks.
type Sinks []Sink

// Record hands r to every sink.
func (s Sinks) Record(r Record) {
	for _, sink := range s {
		sink.Record(r)
	}
}

// Recent keeps the latest records in memory, by id, so a decision can be
// explained shortly after it was made (the MCP explain_decision tool, the
// admin API) without a store. It is bounded and safe for concurrent use.
type Recent struct {
	mu   sync.Mutex
	ring []Record
	next int
	full bool
	byID map[string]int
}

// NewRecent keeps the last n records (n < 1 means 1).
func NewRecent(n int) *Recent {
	n = max(n, 1)
	return &Recent{ring: make([]Record, n), byID: make(map[string]int, n)}
}

// Record keeps r, evicting the oldest record when full.
func (r *Recent) Record(rec Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.ring[r.next]; r.full || old.ID != "" {
		if i, ok := r.byID[old.ID]; ok && i == r.next {
			delete(r.byID, old.ID)
		}
	}
	r.ring[r.next] = rec
	if rec.ID != "" {
		r.byID[rec.ID] = r.next
	}
	r.next++
	if r.next == len(r.ring) {
		r.next, r.full = 0, true
	}
}

// Get returns the record with id, if it is still held.
func (r *Recent) Get(id string) (Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.byID[id]
	if !ok {
		return Record{}, false
	}
	return r.ring[i], true
}

// MarshalJSON writes Input as the JSON document it is (not base64).
func (r Record) MarshalJSON() ([]byte, error) {
	type plain Record
	out := struct {
		plain
		Input json.RawMessage `json:"input,omitempty"`
	}{plain: plain(r)}
	if len(r.Input) > 0 && json.Valid(r.Input) {
		out.Input = r.Input
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Record) UnmarshalJSON(b []byte) error {
	type plain Record
	var in struct {
		plain
		Input json.RawMessage `json:"input,omitempty"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*r = Record(in.plain)
	r.Input = nil
	if len(in.Input) > 0 && string(in.Input) != "null" {
		r.Input = []byte(in.Input)
	}
	return nil
}
