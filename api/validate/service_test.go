package validate_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/validate"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/policy/builtin"
)

func newServer(t *testing.T, recent policy.Sink) *httptest.Server {
	t.Helper()
	b, err := builtin.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	svc := policy.NewService(policy.Options{})
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(map[string]auth.Principal{"tok": {Name: "ci", Roles: []string{auth.RoleAgent}}})
	srv := httptest.NewServer(tokens.Require(auth.RoleAgent,
		validate.Handler(&validate.Service{Querier: svc, Audit: recent, Limits: validate.Limits{MaxBytes: 1 << 16}}, nil)))
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, srv *httptest.Server, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestValidateWithBuiltinRules(t *testing.T) {
	recent := policy.NewRecent(10)
	srv := newServer(t, recent)
	req, _ := json.Marshal(validate.Request{
		Files: []validate.File{
			{Path: "deploy/config.py", Content: "import yaml\n\nAWS_KEY = \"AKIA2E0A8F3B244C9986\"\ncfg = yaml.load(open('c.yml'))\n"},
			{Path: "clean.go", Content: "package clean\n"},
		},
		Diff: "--- a/net.go\n+++ b/net.go\n@@ -10,2 +10,3 @@\n func dial() {\n+\t_ = &tls.Config{InsecureSkipVerify: true}\n }\n",
	})
	code, body := post(t, srv, string(req))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var res validate.Result
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	type key struct {
		rule, path string
		line       int
	}
	got := map[key]string{}
	for _, f := range res.Findings {
		got[key{f.Rule, f.Path, f.Line}] = f.Severity
		if strings.Contains(f.Message, "AKIA2E0A8F3B244C9986") {
			t.Errorf("finding %s echoes the secret: %s", f.Rule, f.Message)
		}
	}
	for k, sev := range map[key]string{
		{"secret.aws-access-key", "deploy/config.py", 3}: "error",
		{"lang.python.yaml-load", "deploy/config.py", 4}: "error",
		{"lang.go.insecure-skip-verify", "net.go", 11}:   "error",
	} {
		if got[k] != sev {
			t.Errorf("finding %+v: severity %q, want %q (all: %+v)", k, got[k], sev, res.Findings)
		}
	}
	if res.OK || res.DecisionID == "" || res.Revision == "" {
		t.Errorf("result: ok %v, id %q, revision %q", res.OK, res.DecisionID, res.Revision)
	}
	rec, ok := recent.Get(res.DecisionID)
	if !ok || rec.Outcome != "deny" || rec.Source != policy.SourceValidate || rec.Principal != "ci" || len(rec.RuleIDs) < 3 {
		t.Errorf("audit record %+v (found %v)", rec, ok)
	}

	code, body = post(t, srv, `{"files":[{"path":"ok.go","content":"package ok\n"}]}`)
	if code != 200 || !strings.Contains(body, `"ok": true`) || !strings.Contains(body, `"findings": []`) {
		t.Errorf("clean file: %d %s", code, body)
	}
}

func TestValidateRejects(t *testing.T) {
	srv := newServer(t, nil)
	for body, want := range map[string]string{
		`{}`:                          "nothing to validate",
		`{"files":[{"content":"x"}]}`: "files[0]: path is empty",
		`{"file":[]}`:                 `unknown field`,
		`{"diff":"not a diff"}`:       "no file changes found",
		`{"files":[{"path":"a","content":"` + strings.Repeat("x", 1<<16+1) + `"}]}`: "over the limit",
		`[1]`:             "not a validation request",
		`{"diff":"x"} {}`: "more than one JSON value",
	} {
		code, got := post(t, srv, body)
		if code != 400 || !strings.Contains(got, want) {
			t.Errorf("%.40s: %d %s, want 400 containing %q", body, code, got, want)
		}
	}
}
