package main

import (
	"os"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/envoy"
)

func TestEnvoyBootstrapCommand(t *testing.T) {
	// The same node as envoy/examples/sidecar-bootstrap.yaml gives the same
	// bootstrap.
	out, errOut, code := runGavel(t, "", "envoy", "bootstrap", "--node-id", "orders-1", "--node-cluster", "orders",
		"--data-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden, err := os.ReadFile("../../envoy/examples/sidecar-bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(golden), "\n") // the generated-by comment
	if out != body {
		t.Fatalf("bootstrap differs from envoy/examples/sidecar-bootstrap.yaml:\n%s", out)
	}
	if _, err := envoy.ParseBootstrap([]byte(out)); err != nil {
		t.Fatal(err)
	}

	// A running gavel's discovery file supplies the ext_authz address.
	g := startGavel(t)
	out, errOut, code = runGavel(t, "", "envoy", "bootstrap", "--node-id", "web-1", "--data-dir", g.info.DataDir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	_, port, _ := strings.Cut(g.info.AuthzAddr, ":")
	if !strings.Contains(out, "port_value: "+port) || !strings.Contains(out, "cluster: web-1") {
		t.Fatalf("bootstrap does not point at the running gavel (%s):\n%s", g.info.AuthzAddr, out)
	}

	if _, errOut, code = runGavel(t, "", "envoy", "bootstrap", "--node-id", "x", "--xds-addr", "nowhere"); code == 0 || !strings.Contains(errOut, `control plane address "nowhere"`) {
		t.Fatalf("bad address: exit %d: %s", code, errOut)
	}
}
