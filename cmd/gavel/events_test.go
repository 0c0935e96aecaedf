package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gavel-dev/gavel/api/events"
	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// dialEvents opens GET /v1/events on a running gavel with token.
func dialEvents(t *testing.T, g *gavelProc, query, token string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := websocket.Dial(t.Context(), "ws://"+g.info.HTTPAddr+"/v1/events"+query, &websocket.DialOptions{HTTPHeader: h})
	if err == nil {
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, resp, err
}

// postHook sends a PreToolUse hook with the hook token and returns the
// decision id gavel answered with.
func postHook(t *testing.T, g *gavelProc, command string) string {
	t.Helper()
	cmd, _ := json.Marshal(command)
	body := `{"session_id":"s1","transcript_path":"/tmp/t.jsonl","cwd":"/tmp","permission_mode":"default","hook_event_name":"PreToolUse",` +
		`"tool_name":"Bash","tool_input":{"command":` + string(cmd) + `},"tool_use_id":"t1"}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+g.info.HTTPAddr+"/v1/hooks/claude-code", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+g.info.HookToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Header.Get(hooks.HeaderDecisionID)
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("hook %q: %d %s (decision id %q)", command, resp.StatusCode, out, id)
	}
	return id
}

// readDecision reads the next event on c as a decision.
func readDecision(t *testing.T, c *websocket.Conn) (store.Event, policy.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	var e store.Event
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("event %s: %v", b, err)
	}
	var r policy.Record
	if e.Type != store.EventDecision {
		t.Fatalf("event %s, want a decision", b)
	}
	if err := json.Unmarshal(e.Data, &r); err != nil {
		t.Fatalf("event data %s: %v", e.Data, err)
	}
	return e, r
}

func streamMetrics(t *testing.T, g *gavelProc) string {
	t.Helper()
	resp, err := http.Get("http://" + g.info.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestEventStreamEndToEnd drives `gavel serve`: the viewer token from the
// discovery file opens the event stream, decisions made through the hooks
// endpoint arrive on it with their decision ids, filtered, and SIGTERM
// closes it with 1001.
func TestEventStreamEndToEnd(t *testing.T) {
	g := startGavel(t)
	if g.info.ViewerToken == "" || g.info.ViewerToken == g.info.HookToken {
		t.Fatalf("discovery file: viewer token %q (hook token %q)", g.info.ViewerToken, g.info.HookToken)
	}
	st, err := os.Stat(filepath.Join(g.info.DataDir, viewerTokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("viewer token file: %v, %v (want mode 0600)", st, err)
	}

	for _, tc := range []struct {
		name, query, token string
		code               int
		body               string
	}{
		{"no token", "", "", http.StatusUnauthorized, "bearer token"},
		{"unknown token", "", "nope", http.StatusUnauthorized, "bearer token"},
		{"agent token", "", g.info.HookToken, http.StatusForbidden, "viewer"},
		{"bad filter", "?outcome=maybe", g.info.ViewerToken, http.StatusBadRequest, "outcome"},
	} {
		_, resp, err := dialEvents(t, g, tc.query, tc.token)
		if err == nil || resp == nil {
			t.Fatalf("%s: dial: %v, want a refusal", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("%s: %d %s, want %d naming %q", tc.name, resp.StatusCode, b, tc.code, tc.body)
		}
	}

	denies, _, err := dialEvents(t, g, "?type=decision&source=hook&outcome=deny&rule=shell.rm-home", g.info.ViewerToken)
	if err != nil {
		t.Fatal(err)
	}
	all, _, err := dialEvents(t, g, "", g.info.ViewerToken)
	if err != nil {
		t.Fatal(err)
	}
	allowID := postHook(t, g, "go test ./...")
	denyID := postHook(t, g, "rm -rf ~")

	e, r := readDecision(t, denies)
	if r.ID != denyID || r.Outcome != "deny" || r.Source != policy.SourceHook || r.Principal != agentPrincipal.Name ||
		len(r.RuleIDs) == 0 || r.RuleIDs[0] != "shell.rm-home" || r.Input != nil {
		t.Fatalf("filtered client: %+v, want the deny %s without its input", r, denyID)
	}
	if host, _ := os.Hostname(); !strings.HasPrefix(e.Replica, host+"-") || e.Time.IsZero() {
		t.Errorf("event replica %q time %v, want host-pid and a time", e.Replica, e.Time)
	}
	for _, want := range []string{allowID, denyID} {
		if _, r := readDecision(t, all); r.ID != want {
			t.Fatalf("unfiltered client: decision %s, want %s", r.ID, want)
		}
	}
	if m := streamMetrics(t, g); !strings.Contains(m, "gavel_websocket_connections 2") ||
		!strings.Contains(m, "gavel_websocket_events_sent_total 3") {
		t.Errorf("metrics:\n%s", grepLines(m, "gavel_websocket"))
	}

	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{denies, all} {
		_, _, err := c.Read(t.Context())
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != events.CloseReasonShutdown {
			t.Fatalf("read after SIGTERM: %v, want close 1001 %q", err, events.CloseReasonShutdown)
		}
	}
	if err := g.cmd.Wait(); err != nil {
		t.Fatalf("gavel exited with %v after SIGTERM", err)
	}
}

// TestEventStreamViewerTokenFile: the viewer token is kept across starts,
// and a file open to others stops gavel at start (the token admits
// whoever reads it).
func TestEventStreamViewerTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, viewerTokenFile)
	a, err := loadOrCreateToken(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadOrCreateToken(path)
	if err != nil || a != b {
		t.Fatalf("second start: %q %v, want the same token %q", b, err, a)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := newEventsAPI(dir, store.NewMemoryBus(0), nil, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("token readable by others: %v, want a refusal saying chmod 600", err)
	}
}

// TestEventStreamAuthzDecisions: ext_authz decisions reach the event stream
// as --authz-events says (denials by default, every one with all, none with
// none), each with the decision id Envoy got; a bad value stops gavel at
// start. A hook denial sent last marks the end of what was published.
func TestEventStreamAuthzDecisions(t *testing.T) {
	bundle := writeBundle(t, t.TempDir())
	for _, tc := range []struct {
		mode string
		want []string // outcomes of the ext_authz events, in order
	}{
		{"", []string{"deny"}},
		{"all", []string{"allow", "deny"}},
		{"none", nil},
	} {
		name := tc.mode
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			args := []string{"--bundle", bundle}
			if tc.mode != "" {
				args = append(args, "--authz-events", tc.mode)
			}
			g := startGavel(t, args...)
			stream, _, err := dialEvents(t, g, "?type=decision", g.info.ViewerToken)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient(g.info.AuthzAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			client := authv3.NewAuthorizationClient(conn)
			ids := map[string]string{} // outcome -> decision id Envoy got
			for outcome, key := range map[string]string{"allow": "k-viewer", "deny": ""} {
				resp, err := client.Check(t.Context(), checkRequest("GET", "/api/v1/orders", key))
				if err != nil {
					t.Fatal(err)
				}
				id, _ := resp.GetDynamicMetadata().AsMap()["decision_id"].(string)
				if id == "" {
					t.Fatalf("%s: no decision_id in the dynamic metadata: %v", outcome, resp)
				}
				ids[outcome] = id
			}
			marker := postHook(t, g, "rm -rf ~")

			var got []string
			for {
				_, r := readDecision(t, stream)
				if r.ID == marker {
					break
				}
				if r.Source != policy.SourceEnvoy || r.ID != ids[r.Outcome] || r.Input != nil {
					t.Fatalf("event %+v, want an envoy decision with the id Envoy got (%v) and no input", r, ids)
				}
				got = append(got, r.Outcome)
			}
			slices.Sort(got) // the two Checks were sent in map order
			if !slices.Equal(got, tc.want) {
				t.Errorf("ext_authz decisions on the stream: %v, want %v", got, tc.want)
			}
		})
	}

	_, stderr, code := runGavel(t, "", "serve", "--authz-events", "some", "--data-dir", t.TempDir(),
		"--http-addr", "127.0.0.1:0", "--authz-addr", "127.0.0.1:0", "--xds-addr", "")
	if code == 0 || !strings.Contains(stderr, `--authz-events "some": want one of none, denied, all`) {
		t.Errorf("bad --authz-events: exit %d, %s", code, stderr)
	}
}
