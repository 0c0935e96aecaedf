package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/gavel-dev/gavel/envoy"
	"github.com/gavel-dev/gavel/policy"
)

// kustomizations are the directories kubectl apply -k takes.
var kustomizations = []string{"k8s/base", "k8s/overlays/dev", "k8s/overlays/prod"}

// manifests are the typed objects of one kustomize build.
type manifests struct {
	deployments   []*appsv1.Deployment
	services      []*corev1.Service
	configMaps    []*corev1.ConfigMap
	pdbs          []*policyv1.PodDisruptionBudget
	netpols       []*networkingv1.NetworkPolicy
	namespaces    []*corev1.Namespace
	controlPlane  *appsv1.Deployment // runs gavel controlplane
	sidecarDeploy *appsv1.Deployment // runs Envoy and gavel authz
}

// build runs kustomize (its Go API, as kubectl apply -k does) and decodes
// every resource strictly into its Kubernetes API type: a field the type
// does not have is an error, as it is for the API server.
func build(t *testing.T, dir string) *manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	m := &manifests{}
	for _, r := range rm.Resources() {
		src, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var obj any
		switch gvk := r.GetGvk(); gvk.ApiVersion() + " " + gvk.Kind {
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			m.deployments, obj = append(m.deployments, d), d
		case "v1 Service":
			s := &corev1.Service{}
			m.services, obj = append(m.services, s), s
		case "v1 ConfigMap":
			c := &corev1.ConfigMap{}
			m.configMaps, obj = append(m.configMaps, c), c
		case "policy/v1 PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			m.pdbs, obj = append(m.pdbs, p), p
		case "networking.k8s.io/v1 NetworkPolicy":
			n := &networkingv1.NetworkPolicy{}
			m.netpols, obj = append(m.netpols, n), n
		case "v1 Namespace":
			n := &corev1.Namespace{}
			m.namespaces, obj = append(m.namespaces, n), n
		default:
			t.Fatalf("%s: unexpected %s %s", dir, gvk, r.GetName())
		}
		if err := yaml.UnmarshalStrict(src, obj); err != nil {
			t.Fatalf("%s: %s %s: %v", dir, r.GetKind(), r.GetName(), err)
		}
	}
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			if sub := gavelCommand(c); sub == "controlplane" {
				m.controlPlane = d
			} else if sub == "authz" {
				m.sidecarDeploy = d
			}
		}
	}
	if m.controlPlane == nil || m.sidecarDeploy == nil {
		t.Fatalf("%s: want a Deployment running gavel controlplane and one running gavel authz", dir)
	}
	return m
}

// gavelCommand is the gavel subcommand a container runs, "" for other
// images.
func gavelCommand(c corev1.Container) string {
	repo, _, _ := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":")
	if repo != "gavel" || len(c.Args) == 0 {
		return ""
	}
	return c.Args[0]
}

func container(t *testing.T, d *appsv1.Deployment, name string) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container %s", d.Name, name)
	return corev1.Container{}
}

func (m *manifests) configMap(t *testing.T, name string) *corev1.ConfigMap {
	t.Helper()
	for _, c := range m.configMaps {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no ConfigMap %s", name)
	return nil
}

// mountedFile is the ConfigMap and key behind a file a container reads.
func mountedFile(t *testing.T, m *manifests, d *appsv1.Deployment, c corev1.Container, path string) (*corev1.ConfigMap, string) {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		key, ok := strings.CutPrefix(path, vm.MountPath+"/")
		if !ok {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				if !vm.ReadOnly {
					t.Errorf("%s: %s is mounted writable", c.Name, vm.MountPath)
				}
				return m.configMap(t, v.ConfigMap.Name), key
			}
		}
	}
	t.Fatalf("container %s: %s is not in a ConfigMap volume", c.Name, path)
	return nil, ""
}

// TestKubernetes builds the base and every overlay and checks what gavel's
// deployment relies on.
func TestKubernetes(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := build(t, dir)
			t.Run("pods", func(t *testing.T) { checkPods(t, m) })
			t.Run("gavel", func(t *testing.T) { checkGavelContainers(t, m) })
			t.Run("services", func(t *testing.T) { checkServices(t, m) })
			t.Run("bootstrap", func(t *testing.T) { checkBootstrap(t, m) })
			t.Run("xds services", func(t *testing.T) { checkXDSServices(t, m) })
			t.Run("bundle", func(t *testing.T) { checkBundle(t, m) })
			t.Run("pdb", func(t *testing.T) { checkPDBs(t, m) })
			t.Run("networkpolicy", func(t *testing.T) { checkNetworkPolicies(t, m) })
			for _, ns := range m.namespaces {
				if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
					t.Errorf("Namespace %s does not enforce the restricted Pod Security Standard", ns.Name)
				}
			}
		})
	}
}

// checkPods: every container runs non-root, read-only, without privileges or
// capabilities, under RuntimeDefault seccomp, with resource requests.
func checkPods(t *testing.T, m *manifests) {
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Deployment %s: selector does not match its pods", d.Name)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("Deployment %s mounts a service account token it does not use", d.Name)
		}
		pod := spec.SecurityContext
		if pod == nil {
			pod = &corev1.PodSecurityContext{}
		}
		for _, c := range spec.Containers {
			where := d.Name + "/" + c.Name
			sc := c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			nonRoot := first(sc.RunAsNonRoot, pod.RunAsNonRoot)
			uid := first(sc.RunAsUser, pod.RunAsUser)
			seccomp := sc.SeccompProfile
			if seccomp == nil {
				seccomp = pod.SeccompProfile
			}
			switch {
			case nonRoot == nil || !*nonRoot:
				t.Errorf("%s: runAsNonRoot is not set", where)
			case uid != nil && *uid == 0:
				t.Errorf("%s: runs as uid 0", where)
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("%s: root filesystem is writable", where)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			case sc.Privileged != nil && *sc.Privileged:
				t.Errorf("%s: privileged", where)
			case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
				t.Errorf("%s: capabilities are not all dropped", where)
			case seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault:
				t.Errorf("%s: seccomp profile is not RuntimeDefault", where)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("%s: no cpu and memory requests", where)
			}
			if c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: no memory limit", where)
			}
			if c.Image == "" || strings.HasSuffix(c.Image, ":latest") && !strings.HasPrefix(c.Image, "ghcr.io/gavel-dev/gavel:") {
				t.Errorf("%s: image %q is not pinned", where, c.Image)
			}
		}
	}
}

func first[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// checkGavelContainers: every gavel container is probed on /healthz and
// /readyz through its --http-addr, declares a port for each listen address
// that is not on loopback and none for those that are.
func checkGavelContainers(t *testing.T, m *manifests) {
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			sub := gavelCommand(c)
			if sub == "" {
				continue
			}
			where := d.Name + "/" + c.Name
			flags := parseFlags(t, c.Args[1:])
			declared := map[int32]bool{}
			for _, p := range c.Ports {
				declared[p.ContainerPort] = true
			}
			for _, f := range listenFlags {
				addr, ok := flags[f]
				if !ok {
					continue
				}
				host, port := splitHostPort(t, addr)
				switch {
				case isLoopback(host) && declared[port]:
					t.Errorf("%s: --%s=%s is on loopback but declared as a container port", where, f, addr)
				case !isLoopback(host) && !declared[port]:
					t.Errorf("%s: --%s=%s has no container port", where, f, addr)
				}
				delete(declared, port)
			}
			for p := range declared {
				t.Errorf("%s: container port %d is no listen address of gavel %s", where, p, sub)
			}
			if sub == "authz" {
				if host, _ := splitHostPort(t, flags["authz-addr"]); !isLoopback(host) {
					t.Errorf("%s: ext_authz listens on %s: keep it on the pod's loopback", where, flags["authz-addr"])
				}
			}
			httpAddr, ok := flags["http-addr"]
			if !ok {
				t.Errorf("%s: no --http-addr: the kubelet has nothing to probe", where)
				continue
			}
			_, httpPort := splitHostPort(t, httpAddr)
			for _, probe := range []struct {
				kind string
				p    *corev1.Probe
				path string
			}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
				if probe.p == nil || probe.p.HTTPGet == nil {
					t.Errorf("%s: no %s httpGet probe", where, probe.kind)
					continue
				}
				if probe.p.HTTPGet.Path != probe.path || containerPort(c, probe.p.HTTPGet.Port) != httpPort {
					t.Errorf("%s: %s probe GET %s on %s, want %s on --http-addr's port %d", where, probe.kind, probe.p.HTTPGet.Path, probe.p.HTTPGet.Port.String(), probe.path, httpPort)
				}
			}
		}
	}
}

// containerPort resolves a port by number or by name; 0 when unknown.
func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// servicePorts resolves a Service's target ports in the pods it selects.
func servicePorts(t *testing.T, m *manifests, s *corev1.Service) (*appsv1.Deployment, map[string]int32) {
	t.Helper()
	var target *appsv1.Deployment
	for _, d := range m.deployments {
		if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			if target != nil {
				t.Errorf("Service %s selects the pods of %s and %s", s.Name, target.Name, d.Name)
			}
			target = d
		}
	}
	if target == nil {
		t.Fatalf("Service %s selects no pods", s.Name)
	}
	ports := map[string]int32{}
	for _, sp := range s.Spec.Ports {
		var p int32
		for _, c := range target.Spec.Template.Spec.Containers {
			if p = containerPort(c, sp.TargetPort); p != 0 {
				break
			}
		}
		if p == 0 {
			t.Errorf("Service %s port %s: target %s is no container port of %s", s.Name, sp.Name, sp.TargetPort.String(), target.Name)
		}
		ports[sp.Name] = p
	}
	return target, ports
}

// checkServices: every Service reaches declared ports; none exposes
// ext_authz; the application's Service goes through Envoy.
func checkServices(t *testing.T, m *manifests) {
	authzPorts := map[int32]bool{}
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			if gavelCommand(c) == "authz" {
				_, p := splitHostPort(t, parseFlags(t, c.Args[1:])["authz-addr"])
				authzPorts[p] = true
			}
		}
	}
	for _, s := range m.services {
		d, ports := servicePorts(t, m, s)
		for name, p := range ports {
			if authzPorts[p] {
				t.Errorf("Service %s port %s exposes ext_authz (%d)", s.Name, name, p)
			}
		}
		if d == m.sidecarDeploy {
			envoyPorts := map[int32]bool{}
			for _, cp := range container(t, d, "envoy").Ports {
				envoyPorts[cp.ContainerPort] = true
			}
			for name, p := range ports {
				if !envoyPorts[p] {
					t.Errorf("Service %s port %s goes to %d, around Envoy", s.Name, name, p)
				}
			}
		}
	}
}

// controlPlaneService is the Service in front of gavel controlplane, and
// the port that reaches its xDS listener.
func controlPlaneService(t *testing.T, m *manifests) (*corev1.Service, int32) {
	t.Helper()
	_, xdsPort := splitHostPort(t, parseFlags(t, container(t, m.controlPlane, "gavel").Args[1:])["xds-addr"])
	for _, s := range m.services {
		d, ports := servicePorts(t, m, s)
		if d != m.controlPlane {
			continue
		}
		for _, sp := range s.Spec.Ports {
			if ports[sp.Name] == xdsPort {
				return s, sp.Port
			}
		}
	}
	t.Fatal("no Service reaches the control plane's xDS port")
	return nil, 0
}

// checkBootstrap: the sidecar Envoy reads the generated bootstrap from its
// ConfigMap, which sends ADS to the control plane's Service and ext_authz
// to gavel authz in the same pod; each Envoy is named after its pod.
func checkBootstrap(t *testing.T, m *manifests) {
	d := m.sidecarDeploy
	e := container(t, d, "envoy")
	if !strings.HasPrefix(e.Image, "envoyproxy/envoy:") {
		t.Errorf("envoy image %q, want the official envoyproxy/envoy", e.Image)
	}
	args := append(slices.Clone(e.Command[1:]), e.Args...)
	i := slices.Index(args, "-c")
	if i < 0 || i+1 == len(args) {
		t.Fatalf("envoy: no -c in %v", args)
	}
	cm, key := mountedFile(t, m, d, e, args[i+1])
	src, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no %s", cm.Name, key)
	}
	generated := bootstrapFiles[1]
	if src != string(generated.generate(t)) {
		t.Errorf("ConfigMap %s is not the generated %s", cm.Name, generated.path)
	}
	b := readBootstrap(t, []byte(src))

	svc, port := controlPlaneService(t, m)
	host, p, _ := clusterEndpoint(t, b, envoy.XDSCluster)
	if host != svc.Name || int32(p) != port {
		t.Errorf("ADS goes to %s:%d, want the control plane Service %s:%d", host, p, svc.Name, port)
	}
	_, authzPort := splitHostPort(t, parseFlags(t, container(t, d, "gavel-authz").Args[1:])["authz-addr"])
	host, p, _ = clusterEndpoint(t, b, envoy.DefaultAuthzCluster)
	if host != "127.0.0.1" || int32(p) != authzPort {
		t.Errorf("ext_authz goes to %s:%d, want gavel authz on 127.0.0.1:%d", host, p, authzPort)
	}

	// The node id is the pod's name, from the downward API.
	j := slices.Index(args, "--service-node")
	if j < 0 || j+1 == len(args) || args[j+1] != "$(POD_NAME)" {
		t.Errorf("envoy: --service-node $(POD_NAME) missing from %v", args)
	}
	fromPod := slices.ContainsFunc(e.Env, func(v corev1.EnvVar) bool {
		return v.Name == "POD_NAME" && v.ValueFrom != nil && v.ValueFrom.FieldRef != nil && v.ValueFrom.FieldRef.FieldPath == "metadata.name"
	})
	if !fromPod {
		t.Error("envoy: POD_NAME does not come from metadata.name")
	}
}

// checkXDSServices: what the control plane serves the sidecars agrees with
// the pod: ext_authz on gavel authz's loopback address, the listener on
// Envoy's container port, the endpoint on the application's loopback port.
func checkXDSServices(t *testing.T, m *manifests) {
	cp := container(t, m.controlPlane, "gavel")
	path := parseFlags(t, cp.Args[1:])["services"]
	cm, key := mountedFile(t, m, m.controlPlane, cp, path)
	ir, err := envoy.ParseServices(key, []byte(cm.Data[key]))
	if err != nil {
		t.Fatal(err)
	}
	d := m.sidecarDeploy
	authzAddr := parseFlags(t, container(t, d, "gavel-authz").Args[1:])["authz-addr"]
	if got := fmt.Sprintf("%s:%d", ir.Authz.Address, ir.Authz.Port); got != authzAddr {
		t.Errorf("services authz %s, want gavel authz's %s", got, authzAddr)
	}
	e := container(t, d, "envoy")
	app := container(t, d, "app")
	for _, s := range ir.Services {
		if !slices.ContainsFunc(e.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == int32(s.Listener.Port) }) {
			t.Errorf("service %s listens on %d: not a port of the envoy container", s.Name, s.Listener.Port)
		}
		for _, ep := range s.Endpoints {
			addr := fmt.Sprintf("%s:%d", ep.Address, ep.Port)
			if !isLoopback(ep.Address) || !slices.ContainsFunc(app.Args, func(a string) bool { return strings.HasSuffix(a, addr) }) {
				t.Errorf("service %s endpoint %s is not the app container's loopback listener (%v)", s.Name, addr, app.Args)
			}
		}
	}
}

// checkBundle: gavel authz's --bundle is the generated tarball in a
// ConfigMap, and loads when the ConfigMap is presented as the kubelet does.
func checkBundle(t *testing.T, m *manifests) {
	d := m.sidecarDeploy
	c := container(t, d, "gavel-authz")
	path := parseFlags(t, c.Args[1:])["bundle"]
	cm, key := mountedFile(t, m, d, c, path)
	data, ok := cm.BinaryData[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no binary %s", cm.Name, key)
	}
	want, err := os.ReadFile(bundleFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != string(want) {
		t.Fatalf("ConfigMap %s is not %s", cm.Name, bundleFile)
	}
	// A ConfigMap volume: the data in a timestamped directory, ..data a
	// link to it, and each key a link through ..data.
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2025_01_01_00_00_00.000000000")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, key), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", key), filepath.Join(dir, key)); err != nil {
		t.Fatal(err)
	}
	b, err := policy.LoadBundle(filepath.Join(dir, key), policy.Limits{})
	if err != nil {
		t.Fatalf("gavel authz --bundle=%s: %v", path, err)
	}
	if len(b.Files) == 0 {
		t.Fatal("the bundle is empty")
	}
}

// checkPDBs: each Deployment has a PodDisruptionBudget that selects exactly
// its pods and still lets a node drain.
func checkPDBs(t *testing.T, m *manifests) {
	covered := map[string]bool{}
	for _, p := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		var matched []*appsv1.Deployment
		for _, d := range m.deployments {
			if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				matched = append(matched, d)
			}
		}
		if len(matched) != 1 {
			t.Errorf("PodDisruptionBudget %s selects %d Deployments, want 1", p.Name, len(matched))
			continue
		}
		d := matched[0]
		covered[d.Name] = true
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		switch {
		case p.Spec.MaxUnavailable != nil:
			if v, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MaxUnavailable, int(replicas), true); err != nil || v < 1 {
				t.Errorf("PodDisruptionBudget %s: maxUnavailable %s blocks every eviction", p.Name, p.Spec.MaxUnavailable.String())
			}
		case p.Spec.MinAvailable != nil:
			if v, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MinAvailable, int(replicas), true); err != nil || int32(v) >= replicas {
				t.Errorf("PodDisruptionBudget %s: minAvailable %s of %d replicas blocks every eviction", p.Name, p.Spec.MinAvailable.String(), replicas)
			}
		default:
			t.Errorf("PodDisruptionBudget %s sets no budget", p.Name)
		}
	}
	for _, d := range m.deployments {
		if !covered[d.Name] {
			t.Errorf("Deployment %s has no PodDisruptionBudget", d.Name)
		}
	}
}

// checkNetworkPolicies: the control plane's xDS port admits only pods with
// a sidecar Envoy, its HTTP port only chosen peers; no policy opens
// ext_authz.
func checkNetworkPolicies(t *testing.T, m *manifests) {
	cp := container(t, m.controlPlane, "gavel")
	flags := parseFlags(t, cp.Args[1:])
	_, xdsPort := splitHostPort(t, flags["xds-addr"])
	_, httpPort := splitHostPort(t, flags["http-addr"])
	sidecarPods := labels.Set(m.sidecarDeploy.Spec.Template.Labels)
	found := false
	for _, np := range m.netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port != nil && p.Port.IntValue() == 9191 {
					t.Errorf("NetworkPolicy %s opens ext_authz (9191)", np.Name)
				}
			}
		}
		if !sel.Matches(labels.Set(m.controlPlane.Spec.Template.Labels)) {
			continue
		}
		found = true
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			t.Errorf("NetworkPolicy %s does not restrict ingress", np.Name)
		}
		xdsAdmitted := false
		for _, rule := range np.Spec.Ingress {
			if len(rule.Ports) == 0 {
				t.Errorf("NetworkPolicy %s: a rule admits every port", np.Name)
			}
			for _, p := range rule.Ports {
				port := int32(p.Port.IntValue())
				if port != xdsPort && port != httpPort {
					t.Errorf("NetworkPolicy %s admits port %d, no gavel listener", np.Name, port)
				}
				if len(rule.From) == 0 {
					t.Errorf("NetworkPolicy %s admits anyone to %d", np.Name, port)
				}
				if port != xdsPort {
					continue
				}
				for _, peer := range rule.From {
					ps, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
					if peer.PodSelector == nil || peer.NamespaceSelector != nil || peer.IPBlock != nil || err != nil || ps.Empty() {
						t.Errorf("NetworkPolicy %s: xDS admits more than the sidecar pods: %+v", np.Name, peer)
						continue
					}
					if ps.Matches(sidecarPods) {
						xdsAdmitted = true
					}
				}
			}
		}
		if !xdsAdmitted {
			t.Errorf("NetworkPolicy %s does not admit the sidecar pods to xDS (%d)", np.Name, xdsPort)
		}
	}
	if !found {
		t.Error("no NetworkPolicy selects the control plane")
	}
}
