package deploy_test

import (
	"os"
	"strings"
	"testing"
)

// loadSite reads the real deployment files.
func loadSite(t *testing.T) *site {
	t.Helper()
	m, err := loadManifests("kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df, err := parseDockerfile(data)
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	v, err := goModVersion(gomod)
	if err != nil {
		t.Fatal(err)
	}
	return &site{M: m, Docker: df, GoVersion: v}
}

// TestDeployment checks the real files: every manifest decodes strictly
// and the pieces agree (see the package documentation).
func TestDeployment(t *testing.T) {
	t.Parallel()
	s := loadSite(t)
	for _, kind := range []struct {
		name string
		n    int
	}{
		{"ConfigMap", len(s.M.ConfigMaps)},
		{"Deployment", len(s.M.Deployments)},
		{"Service", len(s.M.Services)},
		{"PodDisruptionBudget", len(s.M.PDBs)},
		{"HorizontalPodAutoscaler", len(s.M.HPAs)},
		{"Kustomization", len(s.M.Kustomizations)},
	} {
		if kind.n == 0 {
			t.Errorf("no %s in kubernetes/", kind.name)
		}
	}
	for _, p := range s.check() {
		t.Error(p)
	}
	if len(s.configs) == 0 {
		t.Error("no ConfigMap holds a manifold config")
	}
}

// TestChecksCatchMistakes breaks the real files one way at a time and
// expects the checks to say so: each check above can fail.
func TestChecksCatchMistakes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		breakIt func(s *site)
		want    string
	}{
		{"selector misses the pod labels", func(s *site) {
			s.M.Deployments[0].Spec.Selector.MatchLabels = map[string]string{"app": "other"}
		}, "does not match the pod template's labels"},
		{"readiness probe path the admin does not serve", func(s *site) {
			s.M.Deployments[0].Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path = "/ready"
		}, "GET /ready on the admin handler answers 404"},
		{"liveness probe on an undeclared port", func(s *site) {
			s.M.Deployments[0].Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intOrString{Str: "metrics", IsName: true}
		}, "livenessProbe: port metrics is not a container port"},
		{"probe on the gRPC port", func(s *site) {
			s.M.Deployments[0].Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port = intOrString{Str: "grpc", IsName: true}
		}, "but the config's admin listens on"},
		{"admin on loopback", func(s *site) { editConfig(s, "address: 0.0.0.0:9901", "address: 127.0.0.1:9901") },
			"the kubelet probes the pod IP"},
		{"config that does not validate", func(s *site) { editConfig(s, "policy: all", "policy: most") },
			"does not validate"},
		{"grace period shorter than preStop plus drain", func(s *site) { editConfig(s, "drain_timeout: 25s", "drain_timeout: 40s") },
			"terminationGracePeriodSeconds must exceed preStop (10s) + drain_timeout (40s)"},
		{"no preStop delay", func(s *site) { s.M.Deployments[0].Spec.Template.Spec.Containers[0].Lifecycle = nil },
			"lifecycle.preStop.sleep"},
		{"writable root filesystem", func(s *site) {
			f := false
			s.M.Deployments[0].Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &f
		}, "readOnlyRootFilesystem: true"},
		{"root user", func(s *site) {
			var root int64
			s.M.Deployments[0].Spec.Template.Spec.SecurityContext.RunAsUser = &root
		}, "non-zero runAsUser"},
		{"GOMEMLIMIT from the request", func(s *site) {
			for i := range s.M.Deployments[0].Spec.Template.Spec.Containers[0].Env {
				e := &s.M.Deployments[0].Spec.Template.Spec.Containers[0].Env[i]
				if e.Name == "GOMEMLIMIT" {
					e.ValueFrom.ResourceFieldRef.Resource = "requests.memory"
				}
			}
		}, "env GOMEMLIMIT"},
		{"Service targets an undeclared port", func(s *site) {
			s.M.Services[0].Spec.Ports[0].TargetPort = intOrString{Int: 8443}
		}, "targetPort 8443 is not a container port"},
		{"Service exposes admin", func(s *site) {
			s.M.Services[0].Spec.Ports[0].TargetPort = intOrString{Str: "admin", IsName: true}
		}, "exposes the admin port"},
		{"fan-out members on a port the headless Service lacks", func(s *site) {
			editConfig(s, "dns:///machine-nodes:50000", "dns:///machine-nodes:50001")
		}, "uses port 50001, which headless Service machine-nodes does not serve"},
		{"fan-out members from a Service these manifests lack", func(s *site) {
			editConfig(s, "dns:///machine-nodes:50000", "dns:///other-nodes:50000")
		}, "members_from: dns:///other-nodes:50000 is under no headless Service"},
		{"PDB selects other pods", func(s *site) { s.M.PDBs[0].Spec.Selector.MatchLabels = map[string]string{"app": "x"} },
			"selector does not match the proxy's pods"},
		{"HPA scales something else", func(s *site) { s.M.HPAs[0].Spec.ScaleTargetRef.Name = "manifold-v2" },
			"is not the Deployment manifold"},
		{"manifest missing from the kustomization", func(s *site) {
			s.M.Kustomizations[0].Resources = s.M.Kustomizations[0].Resources[1:]
		}, "want every manifest file"},
		{"Dockerfile Go version differs from go.mod", func(s *site) { s.GoVersion = "1.99.0" },
			"want golang:1.99.0, the go line of go.mod"},
		{"Dockerfile CMD differs from the args", func(s *site) { s.Docker.final().Cmd = []string{"--config", "/manifold.yaml"} },
			"differs from the Deployment's args"},
		{"Dockerfile runs as a named user", func(s *site) { s.Docker.final().User = "nonroot" },
			"want a numeric non-root user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := loadSite(t)
			tc.breakIt(s)
			var all []string
			for _, p := range s.check() {
				all = append(all, p.Error())
				if strings.Contains(p.Error(), tc.want) {
					return
				}
			}
			t.Fatalf("no problem containing %q; got %q", tc.want, all)
		})
	}
}

// editConfig replaces old by new in the ConfigMap's manifold config.
func editConfig(s *site, old, new string) {
	for _, cm := range s.M.ConfigMaps {
		for k, v := range cm.Data {
			cm.Data[k] = strings.Replace(v, old, new, 1)
		}
	}
}

// TestStrictDecoding shows that a misspelt field fails instead of being
// ignored.
func TestStrictDecoding(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data, err := os.ReadFile("kubernetes/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "readinessProbe:", "readinesProbe:", 1)
	if err := os.WriteFile(dir+"/deployment.yaml", []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadManifests(dir)
	if err == nil || !strings.Contains(err.Error(), "field readinesProbe not found") {
		t.Fatalf("loadManifests with a misspelt field: got %v, want a field-not-found error", err)
	}
	unknown := "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x}\n"
	if err := os.WriteFile(dir+"/cron.yaml", []byte(unknown), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = loadManifests(dir); err == nil || !strings.Contains(err.Error(), "not a kind these tests know") {
		t.Fatalf("loadManifests with an unknown kind: got %v", err)
	}
}
