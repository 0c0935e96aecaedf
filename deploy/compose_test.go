package deploy_test

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	yaml "go.yaml.in/yaml/v3"

	"github.com/gavel-dev/gavel/envoy"
)

const composeFile = "compose/docker-compose.yaml"

// loadCompose loads the compose file with compose-go, the loader Docker
// Compose itself uses: it validates the file against the compose
// specification's schema and resolves relative paths.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile}, cli.WithWorkingDirectory("compose"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

func composeService(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("%s has no service %s", composeFile, name)
	}
	return s
}

// composeAddr is a service's fixed address on the compose network.
func composeAddr(t *testing.T, s types.ServiceConfig) string {
	t.Helper()
	for _, n := range s.Networks {
		if n != nil && n.Ipv4Address != "" {
			return n.Ipv4Address
		}
	}
	t.Fatalf("service %s has no fixed ipv4_address", s.Name)
	return ""
}

// TestCompose checks that the compose setup hangs together: gavel reaches
// PostgreSQL and Redis by service name, Envoy's generated bootstrap points
// ext_authz and ADS at gavel's ports, the services gavel serves over xDS
// point at the demo service, and gavel runs read-only and non-root.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"gavel", "envoy", "demo", "postgres", "redis", "prometheus"} {
		composeService(t, p, name)
	}
	gavel := composeService(t, p, "gavel")
	if gavel.Build == nil || filepath.Base(gavel.Build.Dockerfile) != "Dockerfile" {
		t.Errorf("gavel is not built from the repository's Dockerfile: %+v", gavel.Build)
	}
	if root, _ := filepath.Abs(".."); gavel.Build != nil && gavel.Build.Context != root {
		t.Errorf("gavel's build context %s, want the repository root %s", gavel.Build.Context, root)
	}
	if len(gavel.Command) == 0 || gavel.Command[0] != "serve" {
		t.Fatalf("gavel's command %v, want serve", gavel.Command)
	}
	flags := parseFlags(t, gavel.Command[1:])

	t.Run("hardening", func(t *testing.T) {
		for _, s := range []types.ServiceConfig{gavel, composeService(t, p, "envoy")} {
			if !s.ReadOnly {
				t.Errorf("%s: read_only is not set", s.Name)
			}
			uid, _, _ := strings.Cut(s.User, ":")
			if n, err := strconv.Atoi(uid); err != nil || n == 0 {
				t.Errorf("%s: user %q, want a numeric non-root uid", s.Name, s.User)
			}
			if !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("%s: cap_drop does not drop ALL", s.Name)
			}
		}
		// The root filesystem is read-only: the data directory must be a
		// volume or tmpfs.
		dataDir := flags["data-dir"]
		writable := slices.ContainsFunc(gavel.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Target == dataDir && !v.ReadOnly
		})
		if dataDir == "" || !writable {
			t.Errorf("--data-dir %q is not a writable volume", dataDir)
		}
	})

	t.Run("stores", func(t *testing.T) {
		pg := flags["postgres-url"]
		u, err := url.Parse(pg)
		if err != nil || u.Scheme != "postgres" || u.Hostname() != "postgres" || u.Port() != "5432" {
			t.Errorf("--postgres-url %q: want the postgres service on 5432", pg)
		}
		if host, port := splitHostPort(t, flags["redis-addr"]); host != "redis" || port != 6379 {
			t.Errorf("--redis-addr %q: want the redis service on 6379", flags["redis-addr"])
		}
		postgres := composeService(t, p, "postgres")
		if postgres.HealthCheck == nil || !slices.Contains(postgres.HealthCheck.Test, "pg_isready") {
			t.Errorf("postgres has no pg_isready healthcheck")
		}
		for _, dep := range []string{"postgres", "redis"} {
			if d, ok := gavel.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("gavel does not wait for %s to be healthy", dep)
			}
		}
	})

	t.Run("envoy", func(t *testing.T) {
		e := composeService(t, p, "envoy")
		if !strings.HasPrefix(e.Image, "envoyproxy/envoy:") {
			t.Errorf("envoy image %q, want the official envoyproxy/envoy", e.Image)
		}
		// The -c file is the generated bootstrap, mounted from this directory.
		i := slices.Index(e.Command, "-c")
		if i < 0 || i+1 == len(e.Command) {
			t.Fatalf("envoy command %v: no -c", e.Command)
		}
		generated, _ := filepath.Abs(bootstrapFiles[0].path)
		mounted := slices.ContainsFunc(e.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Target == e.Command[i+1] && v.Source == generated && v.ReadOnly
		})
		if !mounted {
			t.Errorf("envoy's config %s is not %s mounted read-only", e.Command[i+1], generated)
		}
		b := readBootstrap(t, bootstrapFiles[0].generate(t))

		// ext_authz: gavel's fixed address (a STATIC cluster resolves no
		// names) and its --authz-addr port.
		host, port, typ := clusterEndpoint(t, b, envoy.DefaultAuthzCluster)
		_, authzPort := splitHostPort(t, flags["authz-addr"])
		if host != composeAddr(t, gavel) || int32(port) != authzPort || typ != "STATIC" {
			t.Errorf("ext_authz cluster %s %s:%d, want gavel at %s:%d", typ, host, port, composeAddr(t, gavel), authzPort)
		}
		// ADS: the gavel service by name and its --xds-addr port.
		host, port, typ = clusterEndpoint(t, b, envoy.XDSCluster)
		_, xdsPort := splitHostPort(t, flags["xds-addr"])
		if host != "gavel" || int32(port) != xdsPort || typ != "STRICT_DNS" {
			t.Errorf("xDS cluster %s %s:%d, want gavel:%d", typ, host, port, xdsPort)
		}
		for _, flag := range listenFlags {
			if h, _ := splitHostPort(t, flags[flag]); h != "0.0.0.0" {
				t.Errorf("gavel --%s=%s: other containers cannot reach a loopback address", flag, flags[flag])
			}
		}
	})

	t.Run("services", func(t *testing.T) {
		// What gavel serves over xDS: the ext_authz address Envoy learns
		// there must be gavel too, the endpoints the demo service, and the
		// listener the port Envoy publishes.
		var src string
		for _, v := range gavel.Volumes {
			if v.Target == flags["services"] {
				src = v.Source
			}
		}
		body, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("--services %s is not mounted from this directory: %v", flags["services"], err)
		}
		ir, err := envoy.ParseServices(src, body)
		if err != nil {
			t.Fatal(err)
		}
		_, authzPort := splitHostPort(t, flags["authz-addr"])
		if ir.Authz.Address != composeAddr(t, gavel) || int32(ir.Authz.Port) != authzPort {
			t.Errorf("services authz %s:%d, want gavel at %s:%d", ir.Authz.Address, ir.Authz.Port, composeAddr(t, gavel), authzPort)
		}
		demo := composeService(t, p, "demo")
		e := composeService(t, p, "envoy")
		for _, s := range ir.Services {
			for _, ep := range s.Endpoints {
				if ep.Address != composeAddr(t, demo) || !slices.ContainsFunc(demo.Command, func(a string) bool { return strings.HasSuffix(a, ":"+strconv.Itoa(int(ep.Port))) }) {
					t.Errorf("service %s endpoint %s:%d is not the demo service", s.Name, ep.Address, ep.Port)
				}
			}
			published := slices.ContainsFunc(e.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == s.Listener.Port })
			if !published {
				t.Errorf("service %s listens on %d, which the envoy service does not publish", s.Name, s.Listener.Port)
			}
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		prom := composeService(t, p, "prometheus")
		var dir string
		for _, v := range prom.Volumes {
			if v.Target == "/etc/prometheus" {
				dir = v.Source
			}
		}
		want, _ := filepath.Abs("prometheus")
		if dir != want {
			t.Fatalf("prometheus mounts %q at /etc/prometheus, want %s", dir, want)
		}
		body, err := os.ReadFile(filepath.Join(dir, "prometheus.yml"))
		if os.IsNotExist(err) {
			t.Skip("deploy/prometheus/prometheus.yml does not exist yet")
		}
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			ScrapeConfigs []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"scrape_configs"`
		}
		if err := yaml.Unmarshal(body, &cfg); err != nil {
			t.Fatal(err)
		}
		_, httpPort := splitHostPort(t, flags["http-addr"])
		target := "gavel:" + strconv.Itoa(int(httpPort))
		found := false
		for _, sc := range cfg.ScrapeConfigs {
			for _, st := range sc.StaticConfigs {
				found = found || slices.Contains(st.Targets, target)
			}
		}
		if !found {
			t.Errorf("prometheus.yml does not scrape %s", target)
		}
	})
}
