package policy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/policy"
)

func TestCompileRejects(t *testing.T) {
	syntax := "package a\n\nallow if {\n\tinput.x == == 1\n}\n"
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"syntax error names file and line", map[string]string{"/a/policy.rego": syntax},
			[]string{"a/policy.rego:4", "rego_parse_error"}},
		{"type error names file and line", map[string]string{"/a/policy.rego": "package a\n\nallow if {\n\tcount(1) > 0\n}\n"},
			[]string{"a/policy.rego:4", "rego_type_error"}},
		{"unsafe variable", map[string]string{"/a/policy.rego": "package a\n\nallow if x > 1\n"},
			[]string{"a/policy.rego:3", "rego_unsafe_var_error"}},
		{"package outside the manifest roots", map[string]string{
			"/.manifest":       `{"roots": ["envoy"]}`,
			"/gavel/evil.rego": "package gavel.evil\n\nallow := true\n",
		}, []string{"manifest roots [envoy] do not permit", "gavel.evil", "/gavel/evil.rego"}},
		{"data outside the manifest roots", map[string]string{
			"/.manifest":       `{"roots": ["envoy"]}`,
			"/gavel/data.json": `{"x": 1}`,
		}, []string{"manifest roots [envoy] do not permit data at path '/gavel'"}},
		{"invalid data.json", map[string]string{"/a/data.json": `{"x": `}, []string{"/a/data.json"}},
		{"invalid manifest", map[string]string{"/.manifest": `{"roots": 7}`}, []string{"manifest"}},
		{"entry point conflicts between annotations", map[string]string{"/a/p.rego": `package a

# METADATA
# custom:
#   gavel:
#     dry_run: true
allow if input.x

# METADATA
# custom:
#   gavel:
#     dry_run: false
allow if input.y
`}, []string{"a/p.rego:", "conflicts with another annotation"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := policy.Compile(t.Context(), newBundle(t, tt.files), policy.CompileOptions{})
			if err == nil {
				t.Fatalf("compiled revision %s", e.Revision())
			}
			var ce *policy.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *CompileError", err, err)
			}
			if ce.Source != t.Name() {
				t.Errorf("Source = %q, want %q", ce.Source, t.Name())
			}
			wantErr(t, err, append([]string{"bundle " + t.Name() + " rejected"}, tt.want...)...)
		})
	}
}

const evalPolicy = `package app

default boolean := false

# METADATA
# entrypoint: true
boolean if input.user == "alice"

# METADATA
# entrypoint: true
object := {"allowed": input.user == "alice", "reason": sprintf("user %s", [input.user]), "headers": {"x-user": input.user}}

gavel := {"decision": "ask", "reason": "check", "ttl": "5s"} if input.user == "bob"

undefined if input.never

number := 7

multi contains 1
`

func TestEval(t *testing.T) {
	e := compile(t, map[string]string{"/app/policy.rego": evalPolicy})
	tests := []struct {
		entry   string
		input   string
		want    policy.Outcome
		reason  string
		headers []policy.Header
	}{
		{"app/boolean", `{"user": "alice"}`, policy.Allow, "", nil},
		{"app/boolean", `{"user": "bob"}`, policy.Deny, "", nil},
		{"app/object", `{"user": "alice"}`, policy.Allow, "user alice", []policy.Header{{"x-user", "alice"}}},
		{"app/object", `{"user": "eve"}`, policy.Deny, "user eve", []policy.Header{{"x-user", "eve"}}},
		{"data.app.object", `{"user": "eve"}`, policy.Deny, "user eve", []policy.Header{{"x-user", "eve"}}},
		{"/app/object/", `{"user": "eve"}`, policy.Deny, "user eve", []policy.Header{{"x-user", "eve"}}},
		{"app/gavel", `{"user": "bob"}`, policy.Ask, "check", nil},
	}
	for _, tt := range tests {
		t.Run(tt.entry+" "+tt.input, func(t *testing.T) {
			d, err := e.Eval(t.Context(), tt.entry, input(t, tt.input))
			if err != nil {
				t.Fatal(err)
			}
			if d.Outcome != tt.want || d.Reason != tt.reason || fmt.Sprint(d.Headers) != fmt.Sprint(tt.headers) {
				t.Errorf("got %v %q %v, want %v %q %v", d.Outcome, d.Reason, d.Headers, tt.want, tt.reason, tt.headers)
			}
			if d.Revision != e.Revision() {
				t.Errorf("Revision %q, want %q", d.Revision, e.Revision())
			}
			if !strings.HasPrefix(d.Entry, "app/") || strings.Contains(d.Entry, ".") {
				t.Errorf("Entry %q is not the slash form", d.Entry)
			}
			if d.ID != "" || d.Cached {
				t.Errorf("Engine.Eval set ID %q / Cached %v: those belong to the Service", d.ID, d.Cached)
			}
		})
	}
}

func TestEvalErrors(t *testing.T) {
	e := compile(t, map[string]string{"/app/policy.rego": evalPolicy})
	tests := []struct {
		entry, input string
		is           error
		code         string
		want         string
	}{
		{"app/undefined", `{}`, policy.ErrUndefined, policy.ReasonUndefined, "app/undefined"},
		{"app/gavel", `{"user": "alice"}`, policy.ErrUndefined, policy.ReasonUndefined, "app/gavel"},
		{"app/object", ``, policy.ErrUndefined, policy.ReasonUndefined, "app/object"},
		{"app/nothing", `{}`, policy.ErrUnknownEntry, policy.ReasonUnknownEntry, "no rules at app/nothing"},
		{"nothing/at/all", `{}`, policy.ErrUnknownEntry, policy.ReasonUnknownEntry, "nothing/at/all"},
		{"app/x[y]", `{}`, policy.ErrUnknownEntry, policy.ReasonUnknownEntry, "must not contain variables"},
		{"", `{}`, policy.ErrUnknownEntry, policy.ReasonUnknownEntry, "empty path"},
		{"app/number", `{}`, policy.ErrInvalidDecision, policy.ReasonInvalidDecision, "result is a number"},
		{"app/multi", `{}`, policy.ErrInvalidDecision, policy.ReasonInvalidDecision, "result is an array"},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			in := policy.Input{}
			if tt.input != "" {
				in = input(t, tt.input)
			}
			_, err := e.Eval(t.Context(), tt.entry, in)
			if !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
			wantErr(t, err, tt.want)
			if got := policy.ReasonCode(err); got != tt.code {
				t.Errorf("ReasonCode = %q, want %q", got, tt.code)
			}
		})
	}
}

func TestEntryPoints(t *testing.T) {
	e, err := policy.Compile(t.Context(), newBundle(t, map[string]string{"/app/policy.rego": evalPolicy}),
		policy.CompileOptions{EntryPoints: []string{"app/gavel", "not/in/this/bundle"}})
	if err != nil {
		t.Fatal(err)
	}
	paths := func() (out []string) {
		for _, ep := range e.EntryPoints() {
			out = append(out, fmt.Sprintf("%s declared=%v", ep.Path, ep.Declared))
		}
		return out
	}
	want := "[app/boolean declared=true app/gavel declared=false app/object declared=true]"
	if got := fmt.Sprint(paths()); got != want {
		t.Fatalf("prepared at compile: %s, want %s", got, want)
	}

	// An entry point nobody declared is prepared on first use, once.
	ep, err := e.EntryPoint(t.Context(), "app/undefined")
	if err != nil {
		t.Fatal(err)
	}
	if ep.Declared {
		t.Error("app/undefined is not declared")
	}
	again, err := e.EntryPoint(t.Context(), "data.app.undefined")
	if err != nil {
		t.Fatal(err)
	}
	if again != ep {
		t.Error("the same entry point was prepared twice")
	}
	if got := len(e.EntryPoints()); got != 4 {
		t.Errorf("%d entry points after a lazy prepare, want 4", got)
	}
	// ... and evaluates like a declared one.
	d, err := e.Eval(t.Context(), "app/boolean", input(t, `{"user": "alice"}`))
	if err != nil || !d.Allowed() {
		t.Fatalf("declared entry: %+v, %v", d, err)
	}
	ep, err = e.EntryPoint(t.Context(), "app/number")
	if err != nil || ep.Declared {
		t.Fatalf("lazy entry %+v, %v", ep, err)
	}
}

func TestEntryPointsConcurrentPrepare(t *testing.T) {
	e := compile(t, map[string]string{"/app/policy.rego": evalPolicy})
	const n = 8
	bob := input(t, `{"user": "bob"}`)
	eps := make(chan *policy.EntryPoint, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			ep, err := e.EntryPoint(t.Context(), "app/gavel")
			if err == nil {
				_, err = e.Eval(t.Context(), "app/gavel", bob)
			}
			eps <- ep
			errs <- err
		}()
	}
	first := <-eps
	for range n - 1 {
		if ep := <-eps; ep != first {
			t.Error("concurrent first uses prepared the entry point twice")
		}
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestEngineMetadata(t *testing.T) {
	b := newBundle(t, map[string]string{
		"/.manifest":       `{"roots": ["app"], "revision": "v42", "metadata": {"team": "sre"}}`,
		"/app/policy.rego": evalPolicy,
	})
	e, err := policy.Compile(t.Context(), b, policy.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Revision() != b.Revision || e.Source() != b.Source {
		t.Errorf("revision/source %s %s, want %s %s", e.Revision(), e.Source(), b.Revision, b.Source)
	}
	if m := e.Manifest(); m.Revision != "v42" || m.Metadata["team"] != "sre" {
		t.Errorf("manifest %+v", m)
	}
	if e.CompiledAt().IsZero() || e.Compiler() == nil {
		t.Error("CompiledAt or Compiler missing")
	}
}

func TestEvalData(t *testing.T) {
	e := compile(t, map[string]string{
		"/app/policy.rego":      "package app\n\nallow if input.user in data.app.users\n\nlimit := data.app.limits.max\n",
		"/app/data.json":        `{"users": ["alice"]}`,
		"/app/limits/data.yaml": "max: 3\n",
	})
	d, err := e.Eval(t.Context(), "app/allow", input(t, `{"user": "alice"}`))
	if err != nil || !d.Allowed() {
		t.Fatalf("data.json not loaded: %+v %v", d, err)
	}
	if _, err := e.Eval(t.Context(), "app/allow", input(t, `{"user": "bob"}`)); !errors.Is(err, policy.ErrUndefined) {
		t.Fatalf("bob: %v", err)
	}
	if _, err := e.Eval(t.Context(), "app/limit", input(t, `{}`)); !errors.Is(err, policy.ErrInvalidDecision) || !strings.Contains(err.Error(), "number") {
		t.Fatalf("data.yaml not loaded (want the number 3 as an invalid decision): %v", err)
	}
}

func TestReasonCode(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{policy.ErrNoActiveBundle, policy.ReasonNoBundle},
		{fmt.Errorf("decide: %w", policy.ErrNoActiveBundle), policy.ReasonNoBundle},
		{context.DeadlineExceeded, policy.ReasonTimeout},
		{errors.Join(context.DeadlineExceeded, errors.New("eval_cancel_error")), policy.ReasonTimeout},
		{context.Canceled, policy.ReasonCanceled},
		{fmt.Errorf("x: %w", context.Canceled), policy.ReasonCanceled},
		{fmt.Errorf("%w at a/b", policy.ErrUndefined), policy.ReasonUndefined},
		{fmt.Errorf("%w: no rules", policy.ErrUnknownEntry), policy.ReasonUnknownEntry},
		{fmt.Errorf("evaluate: %w", policy.ErrInvalidDecision), policy.ReasonInvalidDecision},
		{fmt.Errorf("%w: truncated", policy.ErrBadInput), policy.ReasonBadInput},
		{errors.New("eval_conflict_error"), policy.ReasonEvalError},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			if got := policy.ReasonCode(tt.err); got != tt.want {
				t.Errorf("ReasonCode(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestEntryPointRef(t *testing.T) {
	tests := []struct {
		in, ref, path string
		ok            bool
	}{
		{"envoy/authz/allow", "data.envoy.authz.allow", "envoy/authz/allow", true},
		{"/envoy/authz/allow/", "data.envoy.authz.allow", "envoy/authz/allow", true},
		{"data.envoy.authz.allow", "data.envoy.authz.allow", "envoy/authz/allow", true},
		{" claude/hooks/decision ", "data.claude.hooks.decision", "claude/hooks/decision", true},
		{`data.a["b-c"].d`, `data.a["b-c"].d`, "a/b-c/d", true},
		{"a/b-c/d", `data.a["b-c"].d`, "a/b-c/d", true},
		{"a/b c", `data.a["b c"]`, "a/b c", true},
		{"", "", "", false},
		{"data.a[x]", "", "", false},
		{"a/x[y]", "", "", false},
		{"data.a.b-c", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ref, err := policy.EntryPointRef(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
			if !tt.ok {
				return
			}
			if ref.String() != tt.ref {
				t.Errorf("ref %s, want %s", ref, tt.ref)
			}
			if got := policy.EntryPointPath(ref); got != tt.path {
				t.Errorf("path %s, want %s", got, tt.path)
			}
		})
	}
}

// A package whose path is not made of identifiers is valid Rego; its
// declared entry point must compile and be reachable by its slash form.
func TestEntryPointInQuotedPackage(t *testing.T) {
	e := compile(t, map[string]string{"/svc/p.rego": `package svc["my-app"]

# METADATA
# entrypoint: true
allow := input.ok
`})
	for _, path := range []string{"svc/my-app/allow", `data.svc["my-app"].allow`} {
		t.Run(path, func(t *testing.T) {
			d, err := e.Eval(t.Context(), path, input(t, `{"ok": true}`))
			if err != nil || !d.Allowed() {
				t.Fatalf("%+v, %v", d, err)
			}
			if d.Entry != "svc/my-app/allow" {
				t.Errorf("Entry %q", d.Entry)
			}
		})
	}
}
