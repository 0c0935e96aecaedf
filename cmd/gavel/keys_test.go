package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// call sends an authenticated request to a running gavel.
func call(t *testing.T, g *gavelProc, method, path, cred, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+g.info.HTTPAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestKeysCLIAgainstServe creates, lists and revokes keys with the gavel
// keys commands beside a running gavel serve sharing its store.
func TestKeysCLIAgainstServe(t *testing.T) {
	g := startGavel(t, "--api-key-cache-ttl", "-1s")
	dd := g.info.DataDir

	out, errOut, code := runGavel(t, "", "keys", "create", "--data-dir", dd, "--name", "ops", "--role", "admin")
	if code != 0 {
		t.Fatalf("keys create: %d %s", code, errOut)
	}
	key := strings.TrimSpace(out)
	if !strings.HasPrefix(key, "gvl_") || strings.Contains(key, "\n") || !strings.Contains(errOut, "shown this once") {
		t.Fatalf("keys create printed %q / %q", out, errOut)
	}
	if _, errOut, code := runGavel(t, "", "keys", "create", "--data-dir", dd, "--name", "x", "--role", "superuser"); code == 0 || !strings.Contains(errOut, "want one of") {
		t.Errorf("unknown role accepted: %d %s", code, errOut)
	}

	if code, body := call(t, g, "GET", "/v1/services", "", ""); code != 401 {
		t.Errorf("no credentials: %d %s", code, body)
	}
	if code, body := call(t, g, "GET", "/v1/services", key, ""); code != 200 {
		t.Errorf("admin key: %d %s", code, body)
	}
	// The hook token is the agent key local-agent: hooks take it, admin
	// routes refuse it with 403.
	hook := `{"session_id":"s","hook_event_name":"UserPromptSubmit","prompt":"hi","cwd":"/tmp"}`
	if code, body := call(t, g, "POST", "/v1/hooks/claude-code", g.info.HookToken, hook); code != 200 {
		t.Errorf("hook token on hooks: %d %s", code, body)
	}
	if code, body := call(t, g, "POST", "/v1/services/a/instances", g.info.HookToken, `{}`); code != 403 {
		t.Errorf("hook token on an admin route: %d %s", code, body)
	}
	if code, _ := call(t, g, "GET", "/healthz", "", ""); code != 200 {
		t.Errorf("healthz: %d", code)
	}

	var list string
	waitFor(t, 10*time.Second, "ops's last use in gavel keys list", func() bool {
		list, errOut, code = runGavel(t, "", "keys", "list", "--data-dir", dd)
		if code != 0 {
			t.Fatalf("keys list: %d %s", code, errOut)
		}
		for _, l := range strings.Split(list, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[1] == "ops" && len(f) >= 8 && f[6] != "-" {
				return true
			}
		}
		return false
	})
	for _, want := range []string{"LAST USED", "local-agent", "agent", "local-viewer", "viewer", "ops", key[:12] + "…"} {
		if !strings.Contains(list, want) {
			t.Errorf("keys list lacks %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, key[12:]) || strings.Contains(list, g.info.HookToken) {
		t.Errorf("keys list shows a secret:\n%s", list)
	}

	if out, errOut, code := runGavel(t, "", "keys", "revoke", "--data-dir", dd, "ops"); code != 0 {
		t.Fatalf("keys revoke: %d %s %s", code, out, errOut)
	}
	if code, body := call(t, g, "GET", "/v1/services", key, ""); code != 401 || !strings.Contains(body, "revoked") {
		t.Errorf("revoked key: %d %s", code, body)
	}
	if _, errOut, code := runGavel(t, "", "keys", "revoke", "--data-dir", dd, "nobody"); code == 0 || !strings.Contains(errOut, "no key") {
		t.Errorf("revoking an unknown key: %d %s", code, errOut)
	}
	// Revoking local-agent turns the hook token off.
	if _, errOut, code := runGavel(t, "", "keys", "revoke", "--data-dir", dd, "local-agent"); code != 0 {
		t.Fatalf("revoke local-agent: %s", errOut)
	}
	if code, body := call(t, g, "POST", "/v1/hooks/claude-code", g.info.HookToken, hook); code != 401 {
		t.Errorf("revoked hook token: %d %s", code, body)
	}
}

// useAdminKey creates an admin key in g's store with gavel keys create and
// puts it in $GAVEL_TOKEN, which the gavel CLIs send, for the rest of the
// test; it returns the key.
func useAdminKey(t *testing.T, g *gavelProc) string {
	t.Helper()
	out, errOut, code := runGavel(t, "", "keys", "create", "--data-dir", g.info.DataDir, "--name", "test-admin", "--role", "admin")
	if code != 0 {
		t.Fatalf("keys create: %d %s", code, errOut)
	}
	key := strings.TrimSpace(out)
	t.Setenv("GAVEL_TOKEN", key)
	return key
}

// getWithKey is http.Get with a bearer API key.
func getWithKey(url, key string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	return http.DefaultClient.Do(req)
}
