package deploy_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ cmd, args string }

func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || line == "" && cur == "" {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur += s + " "
			continue
		}
		cur += line
		cmd, args, _ := strings.Cut(cur, " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

// execForm reads an instruction in exec (JSON) form.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil {
		t.Fatalf("%s %s: want the exec (JSON) form: %v", in.cmd, in.args, err)
	}
	return v
}

// dockerImage is what the Dockerfile builds, read from its instructions.
type dockerImage struct {
	builder, final string
	build          string // the RUN that builds the binaries
	user           string
	entrypoint     []string
	cmd            []string
	expose         []int32
	volumes        []string
	healthcheck    bool
	goVersion      string
}

func parseDockerfile(t *testing.T) dockerImage {
	t.Helper()
	var img dockerImage
	stage := 0
	for _, in := range readDockerfile(t) {
		switch in.cmd {
		case "ARG":
			if v, ok := strings.CutPrefix(in.args, "GO_VERSION="); ok {
				img.goVersion = v
			}
		case "FROM":
			stage++
			from := strings.Fields(in.args)[0]
			if stage == 1 {
				img.builder = strings.ReplaceAll(from, "${GO_VERSION}", img.goVersion)
			}
			img.final = from
		case "RUN":
			if strings.Contains(in.args, "go build") {
				img.build = in.args
			}
		case "USER":
			img.user = in.args
		case "ENTRYPOINT":
			img.entrypoint = execForm(t, in)
		case "CMD":
			img.cmd = execForm(t, in)
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					t.Fatalf("EXPOSE %s: %v", p, err)
				}
				img.expose = append(img.expose, int32(n))
			}
		case "VOLUME":
			img.volumes = append(img.volumes, execForm(t, in)...)
		case "HEALTHCHECK":
			img.healthcheck = true
		}
	}
	if stage < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", stage)
	}
	return img
}

// TestDockerfile checks the image: built by the Go of go.mod without cgo,
// versioned, on a base without a shell, non-root, listening on every
// interface on the ports it exposes, its data directory a volume.
func TestDockerfile(t *testing.T) {
	img := parseDockerfile(t)
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVersion == nil || img.builder != "golang:"+string(goVersion[1]) {
		t.Errorf("build stage FROM %s, want golang:%s (go.mod)", img.builder, goVersion[1])
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=", "./cmd/gavel ", "./cmd/gavel-hook"} {
		if !strings.Contains(img.build+" ", want) {
			t.Errorf("the go build RUN lacks %q: %s", want, img.build)
		}
	}
	if img.final != "gcr.io/distroless/static-debian12:nonroot" && img.final != "scratch" {
		t.Errorf("final stage FROM %s, want distroless static nonroot or scratch", img.final)
	}
	uid, _, _ := strings.Cut(img.user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %q: want a numeric non-root uid (Kubernetes' runAsNonRoot verifies only numbers)", img.user)
	}
	if img.healthcheck {
		t.Error("HEALTHCHECK needs a shell or client the distroless image does not have")
	}
	if !slices.Equal(img.entrypoint, []string{"/gavel"}) || len(img.cmd) == 0 || img.cmd[0] != "serve" {
		t.Fatalf("ENTRYPOINT %v CMD %v, want /gavel serve", img.entrypoint, img.cmd)
	}
	flags := parseFlags(t, img.cmd[1:])
	var listening []int32
	for _, f := range listenFlags {
		host, port := splitHostPort(t, flags[f])
		if host != "0.0.0.0" {
			t.Errorf("CMD --%s=%s: a container must listen on every interface", f, flags[f])
		}
		listening = append(listening, port)
	}
	slices.Sort(listening)
	slices.Sort(img.expose)
	if !slices.Equal(listening, img.expose) {
		t.Errorf("EXPOSE %v, but CMD listens on %v", img.expose, listening)
	}
	if !slices.Contains(img.volumes, flags["data-dir"]) {
		t.Errorf("--data-dir %s is not a VOLUME %v: the root filesystem is read-only", flags["data-dir"], img.volumes)
	}
}

// TestDockerignore checks that the build context keeps what the build needs:
// go.mod, go.sum and every directory with Go packages but deploy/.
func TestDockerignore(t *testing.T) {
	src, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(src), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "!") {
			patterns = append(patterns, strings.Trim(l, "/"))
		}
	}
	needed := []string{"go.mod", "go.sum"}
	entries, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != "deploy" && !strings.HasPrefix(e.Name(), ".") && hasGo("../"+e.Name()) {
			needed = append(needed, e.Name())
		}
	}
	for _, n := range needed {
		for _, p := range patterns {
			if ok, _ := path.Match(p, n); ok {
				t.Errorf(".dockerignore %q leaves %s out of the build context", p, n)
			}
		}
	}
}

func hasGo(dir string) bool {
	found := false
	_ = walkDir(dir, func(p string) {
		found = found || strings.HasSuffix(p, ".go")
	})
	return found
}

func walkDir(dir string, f func(string)) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := dir + "/" + e.Name()
		if e.IsDir() {
			_ = walkDir(p, f)
			continue
		}
		f(p)
	}
	return nil
}
