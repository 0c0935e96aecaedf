package hooks_test

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/policy/builtin"
)

var update = flag.Bool("update", false, "rewrite testdata/out from testdata/in")

// TestGolden sends every hook in testdata/in, as Claude Code sends it,
// through the real HTTP handler deciding with the built-in bundle, and
// compares the status, the headers Claude Code and operators read, and the
// body with testdata/out. The forwarder reports the project root.
func TestGolden(t *testing.T) {
	b, err := builtin.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	svc := policy.NewService(policy.Options{})
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(map[string]auth.Principal{"tok": {Name: "dev", Roles: []string{auth.RoleAgent}}})
	srv := httptest.NewServer(tokens.Require(auth.RoleAgent, hooks.Handler(hooks.Options{Decider: svc})))
	defer srv.Close()

	ins, _ := filepath.Glob("testdata/in/*.json")
	if len(ins) == 0 {
		t.Fatal("no inputs in testdata/in")
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			r := post(t, srv, "/v1/hooks/claude-code", "tok", string(body), "X-Gavel-Project-Dir", "/work/shop",
				"X-Gavel-Transport", "command-forwarder")
			var got strings.Builder
			fmt.Fprintf(&got, "HTTP %d\n", r.code)
			for _, h := range []string{"Content-Type", hooks.HeaderDecisionID, hooks.HeaderPolicyVersion, hooks.HeaderError} {
				v := r.header.Get(h)
				if v != "" && (h == hooks.HeaderDecisionID || h == hooks.HeaderPolicyVersion) {
					v = "<set>"
				}
				if v != "" {
					fmt.Fprintf(&got, "%s: %s\n", h, v)
				}
			}
			fmt.Fprintf(&got, "\n%s", r.body)
			if r.body != "" {
				got.WriteString("\n")
			}
			out := filepath.Join("testdata/out", name+".http")
			if *update {
				if err := os.WriteFile(out, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("%v (run go test ./api/hooks -run Golden -update)", err)
			}
			if got.String() != string(want) {
				t.Errorf("%s differs (go test ./api/hooks -run Golden -update rewrites it)\n got:\n%s\nwant:\n%s", out, got.String(), want)
			}
		})
	}
}
