package validate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/internal/reply"
	"github.com/gavel-dev/gavel/policy"
)

// hooksEvalTimeout bounds one validation, as agent decisions are bounded.
const hooksEvalTimeout = 2 * time.Second

// DefaultEntryPoint is the validation rules' entry point.
const DefaultEntryPoint = "gavel/validate/findings"

// Finding is one problem in one file.
type Finding struct {
	Rule     string `json:"rule" jsonschema:"the rule's id, e.g. secret.aws-access-key"`
	Severity string `json:"severity" jsonschema:"error, warning or info"`
	Path     string `json:"path"`
	Line     int    `json:"line,omitempty" jsonschema:"1-based line in the new file; 0 for the whole file"`
	Message  string `json:"message"`
}

// Result is a validation's answer.
type Result struct {
	// OK is false when any finding has severity error.
	OK       bool      `json:"ok"`
	Findings []Finding `json:"findings"`
	// DecisionID names the audit record.
	DecisionID string `json:"decision_id"`
	Revision   string `json:"policy_revision"`
}

// Querier evaluates data entry points (a *policy.Service).
type Querier interface {
	Query(ctx context.Context, path string, in policy.Input) (any, error)
	Revision() string
}

// Service checks requests against the bundle's validation rules.
type Service struct {
	Querier Querier
	// EntryPoint defaults to DefaultEntryPoint.
	EntryPoint string
	Limits     Limits
	// Audit receives a record of every validation (nil: none).
	Audit policy.Sink
}

// Validate checks req. A bad request wraps ErrBadRequest; a policy failure
// is returned as is (classify it with policy.ReasonCode).
func (s *Service) Validate(ctx context.Context, p auth.Principal, req Request) (Result, error) {
	start := time.Now()
	doc, err := Input(req, s.Limits)
	if err != nil {
		return Result{}, err
	}
	in, err := policy.NewInput(doc)
	if err != nil {
		return Result{}, err
	}
	entry := s.EntryPoint
	if entry == "" {
		entry = DefaultEntryPoint
	}
	res := Result{OK: true, DecisionID: policy.NewDecisionID(), Revision: s.Querier.Revision()}
	// Validating large files takes longer than Envoy's per-request budget.
	v, err := s.Querier.Query(policy.WithEvalTimeout(ctx, hooksEvalTimeout), entry, in)
	if err == nil {
		res.Findings, err = parseFindings(v)
	}
	rec := policy.Record{
		ID: res.DecisionID, Time: time.Now().UTC(), Source: policy.SourceValidate, Principal: p.Name,
		Action: "validate", Resource: paths(doc), Entry: entry, Revision: res.Revision, Outcome: "allow",
	}
	if err != nil {
		rec.Outcome, rec.ErrorCode, rec.Reasons = "error", policy.ReasonCode(err), []string{err.Error()}
	} else {
		for _, f := range res.Findings {
			if f.Severity == "error" {
				res.OK, rec.Outcome = false, "deny"
			}
			if !slices.Contains(rec.RuleIDs, f.Rule) {
				rec.RuleIDs = append(rec.RuleIDs, f.Rule)
			}
		}
		if !res.OK {
			rec.Reasons = []string{Summary(res.Findings)}
		}
	}
	if s.Audit != nil {
		b, _ := json.Marshal(req)
		sum := sha256.Sum256(b)
		rec.InputDigest = hex.EncodeToString(sum[:])
		rec.Latency = time.Since(start)
		s.Audit.Record(rec)
	}
	return res, err
}

// parseFindings reads the entry point's value: an array of finding
// objects. It sorts them by path, line and rule.
func parseFindings(v any) ([]Finding, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: validation rules returned %T, want an array of findings", policy.ErrInvalidDecision, v)
	}
	out := make([]Finding, 0, len(arr))
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: finding %d is %T, want an object", policy.ErrInvalidDecision, i, e)
		}
		var f Finding
		f.Rule, _ = m["rule"].(string)
		f.Severity, _ = m["severity"].(string)
		f.Path, _ = m["path"].(string)
		f.Message, _ = m["message"].(string)
		if n, ok := m["line"].(json.Number); ok {
			line, err := strconv.Atoi(n.String())
			if err != nil {
				return nil, fmt.Errorf("%w: finding %d: line %s is not an integer", policy.ErrInvalidDecision, i, n)
			}
			f.Line = line
		}
		if f.Rule == "" || f.Message == "" {
			return nil, fmt.Errorf("%w: finding %d has no rule or message", policy.ErrInvalidDecision, i)
		}
		switch f.Severity {
		case "error", "warning", "info":
		default:
			return nil, fmt.Errorf("%w: finding %d (%s): severity %q, want error, warning or info", policy.ErrInvalidDecision, i, f.Rule, f.Severity)
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Finding) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	return out, nil
}

// Summary is findings as text, one per line: "path:line rule: message".
func Summary(findings []Finding) string {
	var b strings.Builder
	for i, f := range findings {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(f.Path)
		if f.Line > 0 {
			b.WriteString(":" + strconv.Itoa(f.Line))
		}
		b.WriteString(" " + f.Rule + " (" + f.Severity + "): " + f.Message)
	}
	return b.String()
}

func paths(doc map[string]any) string {
	files, _ := doc["files"].([]any)
	var names []string
	for _, f := range files {
		if m, ok := f.(map[string]any); ok {
			names = append(names, m["path"].(string))
		}
	}
	s := strings.Join(names, ",")
	if len(s) > 256 {
		s = s[:253] + "..."
	}
	return s
}

// Handler serves POST /v1/validate. It expects an authenticator in front.
func Handler(s *Service, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	limits := s.Limits.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			reply.JSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
			return
		}
		var req Request
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, int64(limits.MaxBytes)+64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			var tooBig *http.MaxBytesError
			msg := "body is not a validation request: " + err.Error() + ` (want {"files":[{"path":...,"content":...}]} or {"diff":"..."})`
			if errors.As(err, &tooBig) {
				msg = fmt.Sprintf("body is over the limit of %d bytes", tooBig.Limit)
			}
			reply.JSON(w, http.StatusBadRequest, map[string]string{"error": msg})
			return
		}
		if _, err := dec.Token(); err != io.EOF {
			reply.JSON(w, http.StatusBadRequest, map[string]string{"error": "body holds more than one JSON value"})
			return
		}
		p, _ := auth.FromContext(r.Context())
		res, err := s.Validate(r.Context(), p, req)
		switch {
		case errors.Is(err, ErrBadRequest):
			reply.JSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		case err != nil:
			code := policy.ReasonCode(err)
			log.Error("validation failed", "reason", code, "err", err)
			reply.JSON(w, http.StatusServiceUnavailable, map[string]string{"error": "validation rules could not be evaluated (" + code + ")", "reason_code": code})
		default:
			reply.JSON(w, http.StatusOK, res)
		}
	})
}
