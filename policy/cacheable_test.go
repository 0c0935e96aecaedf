package policy_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/policy"
)

// meta is the METADATA of an entry point whose cache key lists keys.
func meta(keys ...string) string {
	s := "# METADATA\n# entrypoint: true\n# custom:\n#   gavel:\n#     cache_key:\n"
	if len(keys) == 0 {
		return "# METADATA\n# entrypoint: true\n# custom:\n#   gavel:\n#     cache_key: []\n"
	}
	for _, k := range keys {
		s += "#       - " + k + "\n"
	}
	return s
}

// why is one expected reason for "not cacheable": its text, and the file
// and the line (found by a marker in that file) it must point at.
type why struct {
	text, file, marker string
}

func TestCacheable(t *testing.T) {
	const lib = "/lib/lib.rego"
	libSrc := `package lib

role := input.role # LIB-ROLE

now := time.now_ns() # LIB-NOW

user := input.user
`
	tests := []struct {
		name  string
		src   string // /app/p.rego
		entry string // default app/allow
		want  []why  // empty: cacheable
	}{
		{"exact path", meta("input.user") + `allow if input.user == "alice"`, "", nil},
		{"deeper path", meta("input.attributes.request") + `allow if input.attributes.request.http.method == "GET"`, "", nil},
		{"array index under a declared path", meta("input.parsed_path") + `allow if input.parsed_path[0] == "api"`, "", nil},
		{"iteration under a declared path", meta("input.items") + `allow if { some x in input.items; x > 1 }`, "", nil},
		{"walk under a declared path", meta("input.body") + `allow if { walk(input.body, [_, v]); v == "secret" }`, "", nil},
		{"quoted key", meta(`input.headers["x-api-key"]`) + `allow if input.headers["x-api-key"] == "k"`, "", nil},
		{"array index in the key", meta("input.parsed_path[0]") + `allow if input.parsed_path[0] == "api"`, "", nil},
		{"several keys, helpers and functions", meta("input.user", "input.method") + `allow if { is_user; ok(input.method) }

is_user if lower(input.user) in data.app.users

ok(m) if m in {"GET", "HEAD"}`, "", nil},
		{"rule in another package reading a covered path", meta("input.user") + `allow if data.lib.user == "alice"`, "", nil},
		{"whole input declared", meta("input") + `allow if { x := input; x.user == "alice" }`, "", nil},
		{"reads no input with an empty key", meta() + `allow := true`, "", nil},
		{"reads data only", meta() + `allow if "alice" in data.app.users`, "", nil},

		{"read outside the key", meta("input.user") + `allow if {
	input.user == "alice"
	input.role == "admin" # MARK
}`, "", []why{{"reads input.role, outside the declared cache_key", "app/p.rego", "MARK"}}},
		{"parent of a declared path", meta("input.headers.a") + `allow if count(input.headers) > 1 # MARK`, "",
			[]why{{"reads input.headers, outside", "app/p.rego", "MARK"}}},
		{"sibling of a declared array index", meta("input.parsed_path[0]") + `allow if input.parsed_path[1] == "x" # MARK`, "",
			[]why{{"reads input.parsed_path[1], outside", "app/p.rego", "MARK"}}},
		{"through a helper rule in another package", meta("input.user") + `allow if data.lib.role == "admin"`, "",
			[]why{{"reads input.role, outside", "lib/lib.rego", "LIB-ROLE"}}},
		{"through an import", "import data.lib.role\n\n" + meta("input.user") + `allow if role == "admin"`, "",
			[]why{{"reads input.role, outside", "lib/lib.rego", "LIB-ROLE"}}},
		{"inside a user function", meta("input.user") + `allow if tenant_of(input.user) == "acme"

tenant_of(u) := t if {
	t := input.tenant # MARK
	u != ""
}`, "", []why{{"reads input.tenant, outside", "app/p.rego", "MARK"}}},
		{"inside a comprehension", meta("input.user") + `allow if {
	input.user == "alice"
	count([h | some h in input.hops]) < 3 # MARK
}`, "", []why{{"reads input.hops[", "app/p.rego", "MARK"}}},
		{"inside an every", meta("input.user") + `allow if {
	input.user == "alice"
	every h in input.hops { h != "evil" } # MARK
}`, "", []why{{"reads input.hops, outside", "app/p.rego", "MARK"}}},
		{"in an else branch", meta("input.user") + `allow := true if {
	input.user == "alice"
} else := true if {
	input.role == "admin" # MARK
}`, "", []why{{"reads input.role, outside", "app/p.rego", "MARK"}}},
		{"in a rule head", meta("input.user") + `allow := input.role if input.user == "alice" # MARK`, "",
			[]why{{"reads input.role, outside", "app/p.rego", "MARK"}}},
		{"dynamic reference into rules", meta("input.user") + `allow if data.app.checks[input.user]

checks.alice if input.role == "admin" # MARK`, "", []why{{"reads input.role, outside", "app/p.rego", "MARK"}}},
		{"input used whole", meta("input.user") + `allow if {
	x := input # MARK
	x.user == "alice"
}`, "", []why{{"reads input, outside", "app/p.rego", "MARK"}}},
		{"input passed whole to a builtin", meta("input.user") + `allow if object.get(input, "user", "") == "alice" # MARK`, "",
			[]why{{"reads input, outside", "app/p.rego", "MARK"}}},
		{"variable inside a declared path", meta("input.headers.a") + `allow if {
	some k
	input.headers[k] == "x" # MARK
}`, "", []why{{"reads input.headers[", "app/p.rego", "MARK"}}},
		{"computed key inside a declared path", meta(`input.headers["x-a"]`) + `allow if input.headers[lower("X-A")] == "x" # MARK`, "",
			[]why{{"reads input.headers[", "app/p.rego", "MARK"}}},

		{"time.now_ns", meta("input.user") + `allow if time.now_ns() > 0 # MARK`, "",
			[]why{{"calls non-deterministic builtin time.now_ns", "app/p.rego", "MARK"}}},
		{"rand.intn", meta("input.user") + `allow if rand.intn(input.user, 10) == 0 # MARK`, "",
			[]why{{"calls non-deterministic builtin rand.intn", "app/p.rego", "MARK"}}},
		{"http.send", meta("input.user") + `allow if http.send({"method": "GET", "url": "http://127.0.0.1:1"}).status_code == 200 # MARK`, "",
			[]why{{"calls non-deterministic builtin http.send", "app/p.rego", "MARK"}}},
		{"uuid.rfc4122", meta("input.user") + `allow if uuid.rfc4122(input.user) != "" # MARK`, "",
			[]why{{"calls non-deterministic builtin uuid.rfc4122", "app/p.rego", "MARK"}}},
		{"opa.runtime", meta("input.user") + `allow if opa.runtime().env # MARK`, "",
			[]why{{"calls non-deterministic builtin opa.runtime", "app/p.rego", "MARK"}}},
		{"non-deterministic builtin in another package", meta("input.user") + `allow if data.lib.now > 0`, "",
			[]why{{"calls non-deterministic builtin time.now_ns", "lib/lib.rego", "LIB-NOW"}}},
		{"non-deterministic builtin with the whole input declared", meta("input") + `allow if time.now_ns() > 0 # MARK`, "",
			[]why{{"calls non-deterministic builtin time.now_ns", "app/p.rego", "MARK"}}},
		{"every problem is reported", meta("input.user") + `allow if {
	input.role == "admin" # MARK
	time.now_ns() > 0 # TIME
}`, "", []why{{"reads input.role", "app/p.rego", "MARK"}, {"calls non-deterministic builtin time.now_ns", "app/p.rego", "TIME"}}},

		{"no cache_key declared", "# METADATA\n# entrypoint: true\nallow if input.user == \"alice\"", "",
			[]why{{"no cache_key declared in METADATA custom.gavel", "", ""}}},
		{"a rule that declares nothing", meta("input.user") + `allow if input.user == "alice"

other if input.user == "bob"`, "app/other", []why{{"no cache_key declared", "", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "package app\n\n" + tt.src + "\n"
			files := map[string]string{"/app/p.rego": src, lib: libSrc, "/app/data.json": `{"users": ["alice"]}`}
			e := compile(t, files)
			entry := tt.entry
			if entry == "" {
				entry = "app/allow"
			}
			ep, err := e.EntryPoint(t.Context(), entry)
			if err != nil {
				t.Fatal(err)
			}
			if ep.Cacheable() != (len(tt.want) == 0) {
				t.Fatalf("Cacheable() = %v; NotCacheable: %q", ep.Cacheable(), ep.NotCacheable)
			}
			if len(ep.NotCacheable) != len(tt.want) {
				t.Errorf("NotCacheable = %q, want %d reasons", ep.NotCacheable, len(tt.want))
			}
			for i, w := range tt.want {
				if i >= len(ep.NotCacheable) {
					break
				}
				got := ep.NotCacheable[i]
				if !strings.Contains(got, w.text) {
					t.Errorf("reason %q does not contain %q", got, w.text)
				}
				if w.file != "" {
					where := fmt.Sprintf("(%s:%d)", w.file, lineOf(t, files["/"+w.file], w.marker))
					if !strings.HasSuffix(got, where) {
						t.Errorf("reason %q does not end with %s", got, where)
					}
				}
			}
		})
	}
}

func TestEntryPointConfig(t *testing.T) {
	e := compile(t, map[string]string{"/app/p.rego": `package app

# METADATA
# scope: document
# entrypoint: true
# custom:
#   gavel:
#     cache_key:
#       - input.attributes.request.http.method
#       - input.attributes.request.http.headers["x-api-key"]
#     cache_ttl: 90s
#     dry_run: true
#     reads_body: true
allow if input.attributes.request.http.method == "GET"

allow if input.attributes.request.http.headers["x-api-key"] == "k"
`})
	ep, err := e.EntryPoint(t.Context(), "app/allow")
	if err != nil {
		t.Fatal(err)
	}
	c := ep.Config
	keys := fmt.Sprint(c.CacheKey)
	if keys != `[input.attributes.request.http.method input.attributes.request.http.headers["x-api-key"]]` ||
		c.CacheTTL != 90*time.Second || !c.DryRun || !c.ReadsBody || !ep.Declared || !ep.Cacheable() {
		t.Errorf("config %s %+v declared=%v not cacheable because %q", keys, c, ep.Declared, ep.NotCacheable)
	}
}

func TestBadMetadata(t *testing.T) {
	tests := []struct {
		name, gavel, want string
	}{
		{"cache_key outside input", "cache_key:\n#       - data.users", `cache_key[0]: "data.users" does not start at input`},
		{"cache_key with a variable", "cache_key:\n#       - input.headers[x]", `cache_key[0]: "input.headers[x]" must not contain variables`},
		{"cache_key not a reference", "cache_key:\n#       - \"input.a +\"", `cache_key[0]: "input.a +" is not a Rego reference`},
		{"cache_key not a list", "cache_key: input.user", "cache_key: want a list of input references"},
		{"cache_key element not a string", "cache_key:\n#       - 1", "cache_key[0]: want a string such as input.parsed_path"},
		{"unknown key", "cache_keys:\n#       - input.user", `unknown key "cache_keys" (known: cache_key, cache_ttl, dry_run, reads_body, sensitive)`},
		{"bad cache_ttl", "cache_ttl: soon", `cache_ttl: want a duration such as "30s", got soon`},
		{"negative cache_ttl", "cache_ttl: -1s", `cache_ttl: want a duration such as "30s", got -1s`},
		{"cache_ttl a number", "cache_ttl: 30", `cache_ttl: want a duration such as "30s", got 30`},
		{"dry_run a string", "dry_run: \"yes\"", "dry_run: want true or false, got yes"},
		{"reads_body a number", "reads_body: 1", "reads_body: want true or false, got 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "package app\n\n# METADATA\n# entrypoint: true\n# custom:\n#   gavel:\n#     " + tt.gavel + "\nallow if input.user\n"
			_, err := policy.Compile(t.Context(), newBundle(t, map[string]string{"/app/p.rego": src}), policy.CompileOptions{})
			var ce *policy.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a *CompileError", err)
			}
			where := fmt.Sprintf("/app/p.rego:%d: ", lineOf(t, src, "allow if"))
			wantErr(t, err, where+"METADATA custom.gavel for app/allow: "+tt.want)
		})
	}
	t.Run("gavel not an object", func(t *testing.T) {
		src := "package app\n\n# METADATA\n# custom:\n#   gavel: true\nallow := true\n"
		_, err := policy.Compile(t.Context(), newBundle(t, map[string]string{"/app/p.rego": src}), policy.CompileOptions{})
		wantErr(t, err, "/app/p.rego:6: METADATA custom.gavel for app/allow: want an object, got bool")
	})
}
