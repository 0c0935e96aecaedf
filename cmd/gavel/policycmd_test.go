package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runGavel(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(gavelBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPolicyTestCommand(t *testing.T) {
	passing := writeFiles(t, map[string]string{
		"p/p.rego":      "package p\nallow if input.ok\n",
		"p/p_test.rego": "package p_test\nimport data.p\ntest_ok if p.allow with input as {\"ok\": true}\n",
	})
	failing := writeFiles(t, map[string]string{
		"p/p.rego":      "package p\nallow if input.ok\n",
		"p/p_test.rego": "package p_test\nimport data.p\ntest_wrong if p.allow with input as {\"ok\": false}\n",
	})
	broken := writeFiles(t, map[string]string{"p/p.rego": "package p\nallow if {\n"})

	tests := []struct {
		name, dir string
		code      int
		want      string
	}{
		{"passing bundle", passing, 0, "1 passed, 0 failed"},
		{"failing test", failing, 1, "FAIL: p_test.test_wrong (p/p_test.rego:3)"},
		{"syntax error", broken, 2, "p/p.rego:3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runGavel(t, "", "policy", "test", tc.dir)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("exit %d, output:\n%s%s\nwant exit %d and %q", code, out, errOut, tc.code, tc.want)
			}
		})
	}
	if out, _, code := runGavel(t, "", "policy", "test", "../../policy/builtin/bundle"); code != 0 || !strings.Contains(out, "0 failed") {
		t.Fatalf("built-in bundle tests: exit %d\n%s", code, out)
	}
}

func TestPolicyEvalCommand(t *testing.T) {
	checkReq := `{"attributes": {"request": {"http": {"method": "GET", "path": "/healthz", "headers": {}}}}}`
	out, errOut, code := runGavel(t, checkReq, "policy", "eval", "--input-format", "check-request")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var report evalReport
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("output is not a report: %v\n%s", err, out)
	}
	if report.Decision == nil || !report.Decision.Allowed() || report.Decision.Reason != "public route" || !report.Cacheable || report.EvalTime == "" {
		t.Fatalf("report: %+v", report)
	}

	input := `{"attributes": {"request": {"http": {"method": "GET", "headers": {}}}}, "parsed_path": ["api", "v1", "orders"]}`
	out, _, code = runGavel(t, input, "policy", "eval", "--entry", "envoy/authz/allow")
	if code != 0 || !strings.Contains(out, `"http.key.missing"`) {
		t.Fatalf("exit %d: %s", code, out)
	}

	_, errOut, code = runGavel(t, "{}", "policy", "eval", "--entry", "no/such/rule")
	if code == 0 || !strings.Contains(errOut, "unknown entry point: no rules at no/such/rule") {
		t.Fatalf("unknown entry point: exit %d\n%s", code, errOut)
	}
	_, errOut, code = runGavel(t, "not json", "policy", "eval")
	if code == 0 || !strings.Contains(errOut, "not JSON") {
		t.Fatalf("bad input: exit %d: %s", code, errOut)
	}
}

func TestPolicyBuildCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	stdout, errOut, code := runGavel(t, "", "policy", "build", "../../policy/builtin/bundle", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "revision ") || !strings.Contains(errOut, "entry point envoy/authz/allow: cached") {
		t.Fatalf("stdout %q stderr %q", stdout, errOut)
	}
	// The tarball has the directory's revision, and tests run on it.
	dirRev := strings.TrimSpace(strings.SplitN(stdout, "revision ", 2)[1])
	stdout2, _, code := runGavel(t, "", "policy", "build", out, "-o", filepath.Join(t.TempDir(), "c.tar.gz"))
	if code != 0 || !strings.Contains(stdout2, dirRev) {
		t.Fatalf("rebuilding the tarball: exit %d, %q, want revision %s", code, stdout2, dirRev)
	}
}
