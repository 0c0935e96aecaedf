package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestHookDeps keeps gavel-hook small: it starts on every tool call, so it
// must not link the policy engine, Envoy's protos or gRPC.
func TestHookDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/open-policy-agent",
		"github.com/envoyproxy",
		"google.golang.org/grpc",
		"google.golang.org/protobuf",
		"github.com/spf13/cobra",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("gavel-hook depends on %s", dep)
			}
		}
		// Besides the standard library, only the discovery file reader.
		if strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") &&
			dep != "github.com/gavel-dev/gavel/cmd/internal/discovery" &&
			dep != "github.com/gavel-dev/gavel/cmd/gavel-hook" &&
			!strings.HasPrefix(dep, "vendor/") {
			t.Errorf("gavel-hook depends on %s: it may use only the standard library and cmd/internal/discovery", dep)
		}
	}
}
