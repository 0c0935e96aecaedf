package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func TestPortsCommand(t *testing.T) {
	g := startGavel(t, "--port-range", "31000-31999", "--lease-ttl", "20s")
	// The discovery file of the data dir finds the server; runGavel's
	// environment must not point discovery elsewhere.
	t.Setenv("XDG_RUNTIME_DIR", "")
	useAdminKey(t, g) // port discovery writes need admin
	byFile := []string{"--data-dir", g.info.DataDir}
	byURL := []string{"--server", "http://" + g.info.HTTPAddr}

	type instance struct {
		Service, ID, Address, TTL string
		Port                      int
		Labels                    map[string]string
	}
	ports := func(args ...string) (string, string, int) {
		t.Helper()
		return runGavel(t, "", append([]string{"ports"}, args...)...)
	}

	out, errOut, code := ports(append([]string{"register", "web", "--label", "zone=a", "--label", "tier=front"}, byFile...)...)
	if code != 0 {
		t.Fatalf("register: exit %d: %s", code, errOut)
	}
	var web instance
	if err := json.Unmarshal([]byte(out), &web); err != nil {
		t.Fatalf("register output %q: %v", out, err)
	}
	if web.Service != "web" || web.ID == "" || web.Port < 31000 || web.Port > 31999 || web.TTL != "20s" ||
		web.Labels["zone"] != "a" || web.Labels["tier"] != "front" {
		t.Fatalf("registered %+v", web)
	}
	out, errOut, code = ports(append([]string{"register", "api", "--port", "8443", "--ttl", "1m"}, byURL...)...)
	if code != 0 || !strings.Contains(out, `"port": 8443`) {
		t.Fatalf("register with a port: exit %d: %s%s", code, out, errOut)
	}
	// The same port again is taken: the server's message, exit 1.
	_, errOut, code = ports(append([]string{"register", "other", "--port", "8443"}, byURL...)...)
	if code != 1 || !strings.Contains(errOut, "port is leased to another instance") {
		t.Fatalf("port taken: exit %d: %s", code, errOut)
	}

	out, errOut, code = ports(append([]string{"list"}, byFile...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "SERVICE") ||
		!strings.Contains(lines[1], "api") || !strings.Contains(lines[1], "8443") ||
		!strings.Contains(lines[2], web.ID) || !strings.Contains(lines[2], "tier=front,zone=a") {
		t.Fatalf("list: exit %d:\n%s%s", code, out, errOut)
	}
	// Columns line up.
	if strings.Index(lines[0], "PORT") != strings.Index(lines[2], " "+strconv.Itoa(web.Port)+" ")+1 {
		t.Errorf("list columns not aligned:\n%s", out)
	}

	out, errOut, code = ports(append([]string{"renew", "web", web.ID, "--ttl", "2m"}, byURL...)...)
	if code != 0 || !strings.Contains(out, `"ttl": "2m0s"`) {
		t.Fatalf("renew: exit %d: %s%s", code, out, errOut)
	}

	if _, errOut, code = ports(append([]string{"release", "web", web.ID}, byURL...)...); code != 0 {
		t.Fatalf("release: exit %d: %s", code, errOut)
	}
	_, errOut, code = ports(append([]string{"release", "web", web.ID}, byURL...)...)
	if code != 1 || !strings.Contains(errOut, "no such lease") {
		t.Fatalf("second release: exit %d: %s", code, errOut)
	}
	if out, _, _ = ports(append([]string{"list"}, byURL...)...); strings.Contains(out, web.ID) {
		t.Fatalf("released lease still listed:\n%s", out)
	}
}
