package deploy_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// buildGavel builds gavel as the Dockerfile does: no cgo, trimmed paths,
// stripped, the version linked in.
func buildGavel(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds gavel; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "gavel")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=deploy-test", "-o", bin, "../cmd/gavel")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestCommandLines runs every gavel command line these files hold with
// --help added, which makes gavel parse the flags and stop: an unknown flag
// or a bad value fails. It also checks the binary the Dockerfile builds:
// static (the final image has no libc) and versioned.
func TestCommandLines(t *testing.T) {
	bin := buildGavel(t)
	out, err := exec.CommandContext(t.Context(), bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "deploy-test") {
		t.Errorf("gavel version: %v %s: -X main.version did not take", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("gavel is dynamically linked: it cannot run on distroless static")
		}
	}
	f.Close()

	lines := map[string][]string{}
	img := parseDockerfile(t)
	lines["Dockerfile CMD"] = img.cmd
	lines["compose gavel"] = loadCompose(t).Services["gavel"].Command
	for _, u := range units {
		start := strings.Fields(parseUnit(t, u.file)["Service"]["ExecStart"][0])
		lines[u.file] = start[1:]
	}
	envVar := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	for _, dir := range kustomizations {
		m := build(t, dir)
		for _, d := range m.deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				if gavelCommand(c) == "" {
					continue
				}
				args := []string{}
				for _, a := range c.Args {
					args = append(args, envVar.ReplaceAllString(a, "x"))
				}
				// GAVEL_<FLAG> variables are flags too.
				for _, e := range c.Env {
					if name, ok := strings.CutPrefix(e.Name, "GAVEL_"); ok {
						args = append(args, "--"+strings.ReplaceAll(strings.ToLower(name), "_", "-")+"="+e.Value)
					}
				}
				lines[dir+" "+d.Name+"/"+c.Name] = args
			}
		}
	}
	for where, args := range lines {
		cmd := exec.CommandContext(t.Context(), bin, append(args, "--help")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: gavel %s: %v\n%s", where, strings.Join(args, " "), err, lastLine(out))
		}
	}

	// The generated bootstraps are what the command prints.
	for _, g := range bootstrapFiles {
		args := append([]string{"envoy", "bootstrap", "--data-dir", t.TempDir()}, g.args()...)
		out, err := exec.CommandContext(t.Context(), bin, args...).Output()
		if err != nil {
			t.Fatalf("gavel %s: %v", strings.Join(args, " "), err)
		}
		want, err := os.ReadFile(g.path)
		if err != nil {
			t.Fatal(err)
		}
		if g.header()+string(out) != string(want) {
			t.Errorf("gavel %s does not print %s", strings.Join(args, " "), g.path)
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
