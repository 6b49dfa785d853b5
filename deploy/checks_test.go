package deploy_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/manifold-grpc/manifold/admin"
	"github.com/manifold-grpc/manifold/config"
	_ "github.com/manifold-grpc/manifold/filters/logging" // the ConfigMap's filters must be registered to validate
)

// defaultDrainTimeout is the binary's drain timeout when the config sets
// none (manifold --drain-timeout's default).
const defaultDrainTimeout = 30 * time.Second

// site is everything the checks compare: the decoded manifests, the
// Dockerfile and go.mod's Go version.
type site struct {
	M          *manifests
	Docker     *dockerfile
	GoVersion  string
	configs    map[string]*config.Config // ConfigMap name/key → parsed config
	configErrs []error
}

// problems collects every failed check, so one run reports them all.
type problems []error

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Errorf(format, args...)) }

// parseConfigs validates every ConfigMap entry that is a manifold config
// (a key ending in .yaml) with the binary's own config package.
func (s *site) parseConfigs() {
	s.configs = map[string]*config.Config{}
	for _, cm := range s.M.ConfigMaps {
		for key, text := range cm.Data {
			if !strings.HasSuffix(key, ".yaml") {
				continue
			}
			// No environment: the pod has none that the file refers to.
			cfg, err := config.Parse(cm.Metadata.Name+"/"+key, []byte(text), func(string) (string, bool) { return "", false })
			if err != nil {
				s.configErrs = append(s.configErrs, fmt.Errorf("ConfigMap %s key %s does not validate: %w", cm.Metadata.Name, key, err))
				continue
			}
			s.configs[cm.Metadata.Name+"/"+key] = cfg
		}
	}
}

// check runs every check.
func (s *site) check() problems {
	s.parseConfigs()
	p := problems(s.configErrs)
	s.checkDocs(&p)
	s.checkKustomization(&p)
	for _, d := range s.M.Deployments {
		s.checkDeployment(&p, d)
	}
	s.checkServices(&p)
	s.checkPDBs(&p)
	s.checkHPAs(&p)
	s.checkDockerfile(&p)
	return p
}

func (s *site) checkDocs(p *problems) {
	seen := map[string]bool{}
	for _, d := range s.M.Docs {
		if d.APIVersion == "" || d.Kind == "" {
			p.addf("%v: apiVersion and kind are required", d)
		}
		if d.Kind == "Kustomization" {
			continue
		}
		if d.Metadata.Name == "" {
			p.addf("%v: metadata.name is required", d)
		}
		if key := d.Kind + "/" + d.Metadata.Name; seen[key] {
			p.addf("%v: a second %s", d, key)
		} else {
			seen[key] = true
		}
	}
}

func (s *site) checkKustomization(p *problems) {
	if len(s.M.Kustomizations) != 1 {
		p.addf("want one kustomization.yaml, found %d", len(s.M.Kustomizations))
		return
	}
	var want []string
	for _, f := range s.M.Files {
		if f != "kustomization.yaml" {
			want = append(want, f)
		}
	}
	got := slices.Sorted(slices.Values(s.M.Kustomizations[0].Resources))
	if !slices.Equal(got, want) {
		p.addf("kustomization.yaml resources %v, want every manifest file %v", got, want)
	}
}

// selects reports whether every label of sel is on labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// proxyConfig returns the manifold config the deployment's container
// reads: the ConfigMap key behind the --config path.
func (s *site) proxyConfig(p *problems, d *deployment, c *container) *config.Config {
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		p.addf("Deployment %s: container %s: args %q have no --config FILE", d.Metadata.Name, c.Name, c.Args)
		return nil
	}
	file := c.Args[i+1]
	for _, vm := range c.VolumeMounts {
		if path.Dir(file) != path.Clean(vm.MountPath) {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			key := v.ConfigMap.Name + "/" + path.Base(file)
			if cfg := s.configs[key]; cfg != nil {
				return cfg
			}
			p.addf("Deployment %s: --config %s is ConfigMap %s, which has no valid manifold config there", d.Metadata.Name, file, key)
			return nil
		}
	}
	p.addf("Deployment %s: --config %s is not in a mounted ConfigMap", d.Metadata.Name, file)
	return nil
}

// containerPort resolves a port reference (number or name) to a declared
// container port number, or 0.
func containerPort(c *container, ref intOrString) int {
	for _, port := range c.Ports {
		if (ref.IsName && port.Name == ref.Str) || (!ref.IsName && port.ContainerPort == ref.Int) {
			return port.ContainerPort
		}
	}
	return 0
}

func portOf(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}

func (s *site) checkDeployment(p *problems, d *deployment) {
	name := "Deployment " + d.Metadata.Name
	spec, pod := &d.Spec, &d.Spec.Template.Spec
	if !selects(spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
		p.addf("%s: selector %v does not match the pod template's labels %v", name, spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)
	}
	if spec.Replicas == nil || *spec.Replicas < 2 {
		p.addf("%s: replicas: want at least 2 for a drain without downtime", name)
	}
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		p.addf("%s: securityContext: want runAsNonRoot: true and a non-zero runAsUser", name)
	} else if user := s.Docker.final().User; !strings.HasPrefix(user, strconv.FormatInt(*sc.RunAsUser, 10)+":") && user != strconv.FormatInt(*sc.RunAsUser, 10) {
		p.addf("%s: runAsUser %d is not the image's USER %q", name, *sc.RunAsUser, user)
	}
	if len(pod.Containers) != 1 {
		p.addf("%s: want one container, found %d", name, len(pod.Containers))
		return
	}
	c := &pod.Containers[0]
	cname := name + ": container " + c.Name
	cfg := s.proxyConfig(p, d, c)

	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		p.addf("%s: securityContext: want readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}", cname)
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			p.addf("%s: resources.requests.%s: required", cname, r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		p.addf("%s: resources.limits.memory: required", cname)
	}
	gomemlimit := false
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil {
			ref := e.ValueFrom.ResourceFieldRef
			gomemlimit = ref.Resource == "limits.memory" && ref.ContainerName == c.Name && (ref.Divisor == "" || ref.Divisor == "1")
		}
	}
	if !gomemlimit {
		p.addf("%s: env GOMEMLIMIT: want valueFrom.resourceFieldRef {containerName: %s, resource: limits.memory} in bytes", cname, c.Name)
	}

	// Probes: admin paths on the admin port, which the config must bind on
	// the pod IP.
	adminPort := 0
	if cfg != nil {
		host, port, err := net.SplitHostPort(cfg.Admin.Address)
		switch {
		case err != nil:
			p.addf("%s: config admin.address %q: %v (the probes need the admin listener)", cname, cfg.Admin.Address, err)
		case host != "" && host != "0.0.0.0" && host != "::":
			p.addf("%s: config admin.address %q: the kubelet probes the pod IP; listen on 0.0.0.0", cname, cfg.Admin.Address)
		default:
			adminPort, _ = strconv.Atoi(port)
		}
	}
	adm := admin.New()
	for _, pr := range []struct {
		kind  string
		probe *probe
		want  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			p.addf("%s: %s: want an httpGet probe of %s", cname, pr.kind, pr.want)
			continue
		}
		get := pr.probe.HTTPGet
		if get.Path != pr.want {
			p.addf("%s: %s: path %q, want %s", cname, pr.kind, get.Path, pr.want)
		}
		rec := httptest.NewRecorder()
		adm.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, get.Path, nil))
		if rec.Code != http.StatusOK {
			p.addf("%s: %s: GET %s on the admin handler answers %d, want 200", cname, pr.kind, get.Path, rec.Code)
		}
		port := containerPort(c, get.Port)
		switch {
		case port == 0:
			p.addf("%s: %s: port %v is not a container port", cname, pr.kind, get.Port)
		case cfg != nil && port != adminPort:
			p.addf("%s: %s: port %v is %d, but the config's admin listens on %q", cname, pr.kind, get.Port, port, cfg.Admin.Address)
		}
	}
	if cfg != nil {
		for i, l := range cfg.Listeners {
			if containerPort(c, intOrString{Int: portOf(l.Address)}) == 0 {
				p.addf("%s: config listeners[%d] %q: its port is not a container port", cname, i, l.Address)
			}
		}
	}

	// Shutdown: endpoints leave during preStop, then SIGTERM drains.
	preStop := 0
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
		p.addf("%s: lifecycle.preStop.sleep: want a delay so endpoints are removed before SIGTERM", cname)
	} else {
		preStop = c.Lifecycle.PreStop.Sleep.Seconds
	}
	if cfg != nil {
		drain := cfg.DrainTimeout
		if drain == 0 {
			drain = defaultDrainTimeout
		}
		need := time.Duration(preStop)*time.Second + drain
		if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= need {
			p.addf("%s: terminationGracePeriodSeconds must exceed preStop (%ds) + drain_timeout (%v) = %v", name, preStop, drain, need)
		}
	}
}

// proxyDeployment returns the one Deployment, for the cross checks.
func (s *site) proxyDeployment(p *problems) *deployment {
	if len(s.M.Deployments) != 1 {
		p.addf("want one Deployment, found %d", len(s.M.Deployments))
		return nil
	}
	return s.M.Deployments[0]
}

func (s *site) checkServices(p *problems) {
	d := s.proxyDeployment(p)
	if d == nil || len(d.Spec.Template.Spec.Containers) == 0 {
		return
	}
	c := &d.Spec.Template.Spec.Containers[0]
	labels := d.Spec.Template.Metadata.Labels
	var proxy, headless []*service
	for _, svc := range s.M.Services {
		switch {
		case svc.Spec.ClusterIP == "None":
			headless = append(headless, svc)
		case selects(svc.Spec.Selector, labels):
			proxy = append(proxy, svc)
		default:
			p.addf("Service %s: selects %v, not the proxy's pods, and is not headless", svc.Metadata.Name, svc.Spec.Selector)
		}
	}
	if len(proxy) == 0 {
		p.addf("no Service selects the proxy's pods %v", labels)
	}
	if len(headless) == 0 {
		p.addf("no headless Service (clusterIP: None) for fan-out nodes")
	}
	for _, svc := range proxy {
		for _, port := range svc.Spec.Ports {
			target := port.TargetPort
			if !target.IsName && target.Int == 0 {
				target = intOrString{Int: port.Port}
			}
			n := containerPort(c, target)
			if n == 0 {
				p.addf("Service %s: port %s: targetPort %v is not a container port", svc.Metadata.Name, port.Name, target)
			}
			if cfg := s.proxyConfig(&problems{}, d, c); cfg != nil && n != 0 && n == portOf(cfg.Admin.Address) {
				p.addf("Service %s: port %s exposes the admin port, which has no authentication", svc.Metadata.Name, port.Name)
			}
		}
	}
	// Fan-out members named under a headless Service must use its port.
	cfg := s.proxyConfig(&problems{}, d, c)
	if cfg == nil {
		return
	}
	for _, g := range cfg.Fanout {
		// label → target: each listed member, and the resolver target
		// the members come from.
		targets := map[string]string{}
		for _, m := range g.Members {
			targets["member "+m.Name] = m.Target
		}
		if g.MembersFrom != "" {
			targets["members_from"] = g.MembersFrom
		}
		for label, target := range targets {
			host, port, err := net.SplitHostPort(strings.TrimPrefix(target, "dns:///"))
			if err != nil {
				continue
			}
			under := false
			for _, svc := range headless {
				name := svc.Metadata.Name
				if host != name && !strings.HasPrefix(host, name+".") && !strings.HasSuffix(host, "."+name) && !strings.Contains(host, "."+name+".") {
					continue
				}
				under = true
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp servicePort) bool { return strconv.Itoa(sp.Port) == port }) {
					p.addf("fan-out %s %s: %s uses port %s, which headless Service %s does not serve", g.Name, label, target, port, name)
				}
			}
			if !under {
				p.addf("fan-out %s %s: %s is under no headless Service of these manifests", g.Name, label, target)
			}
		}
	}
}

func (s *site) checkPDBs(p *problems) {
	d := s.proxyDeployment(p)
	if d == nil {
		return
	}
	if len(s.M.PDBs) == 0 {
		p.addf("no PodDisruptionBudget")
	}
	for _, pdb := range s.M.PDBs {
		name := "PodDisruptionBudget " + pdb.Metadata.Name
		if pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
			p.addf("%s: selector does not match the proxy's pods %v", name, d.Spec.Template.Metadata.Labels)
		}
		switch {
		case (pdb.Spec.MaxUnavailable == nil) == (pdb.Spec.MinAvailable == nil):
			p.addf("%s: set exactly one of maxUnavailable and minAvailable", name)
		case pdb.Spec.MinAvailable != nil && !pdb.Spec.MinAvailable.IsName && d.Spec.Replicas != nil && pdb.Spec.MinAvailable.Int >= *d.Spec.Replicas:
			p.addf("%s: minAvailable %d blocks every drain of %d replicas", name, pdb.Spec.MinAvailable.Int, *d.Spec.Replicas)
		case pdb.Spec.MaxUnavailable != nil && !pdb.Spec.MaxUnavailable.IsName && pdb.Spec.MaxUnavailable.Int < 1:
			p.addf("%s: maxUnavailable %d blocks every drain", name, pdb.Spec.MaxUnavailable.Int)
		}
	}
}

func (s *site) checkHPAs(p *problems) {
	d := s.proxyDeployment(p)
	if d == nil || len(d.Spec.Template.Spec.Containers) == 0 {
		return
	}
	for _, h := range s.M.HPAs {
		name := "HorizontalPodAutoscaler " + h.Metadata.Name
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != d.APIVersion || ref.Kind != d.Kind || ref.Name != d.Metadata.Name {
			p.addf("%s: scaleTargetRef %s %s %s is not the Deployment %s", name, ref.APIVersion, ref.Kind, ref.Name, d.Metadata.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			p.addf("%s: want 2 <= minReplicas <= maxReplicas", name)
		}
		cpu := false
		for _, m := range h.Spec.Metrics {
			if m.Type == "Resource" && m.Resource != nil && m.Resource.Name == "cpu" && m.Resource.Target.Type == "Utilization" && m.Resource.Target.AverageUtilization != nil {
				cpu = true
			}
		}
		if !cpu {
			p.addf("%s: want a Resource cpu metric with a Utilization target", name)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if cpu && c.Resources.Requests["cpu"] == "" {
				p.addf("%s: container %s has no cpu request, which CPU utilization is relative to", name, c.Name)
			}
		}
	}
	if len(s.M.HPAs) == 0 {
		p.addf("no HorizontalPodAutoscaler")
	}
}

func (s *site) checkDockerfile(p *problems) {
	df := s.Docker
	if len(df.Stages) < 2 {
		p.addf("Dockerfile: want a build stage and a final stage, found %d stages", len(df.Stages))
		return
	}
	build := df.Stages[0]
	if image := df.expand(build.From); image != "golang:"+s.GoVersion && !strings.HasPrefix(image, "golang:"+s.GoVersion+"-") {
		p.addf("Dockerfile: build stage FROM %s (%s), want golang:%s, the go line of go.mod", build.From, image, s.GoVersion)
	}
	built := false
	for _, run := range build.Runs {
		if strings.Contains(run, "CGO_ENABLED=0") && strings.Contains(run, "go build") && strings.Contains(run, "./cmd/manifold") {
			built = true
		}
	}
	if !built {
		p.addf("Dockerfile: no RUN CGO_ENABLED=0 go build … ./cmd/manifold in the build stage")
	}
	final := df.final()
	if !strings.HasPrefix(final.From, "gcr.io/distroless/static") && final.From != "scratch" {
		p.addf("Dockerfile: final stage FROM %s, want distroless static or scratch", final.From)
	}
	uid, _, _ := strings.Cut(final.User, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		p.addf("Dockerfile: USER %q: want a numeric non-root user (runAsNonRoot can only verify numbers)", final.User)
	}
	if !slices.Equal(final.Entrypoint, []string{"/manifold"}) {
		p.addf("Dockerfile: ENTRYPOINT %q, want [\"/manifold\"]", final.Entrypoint)
	}
	if !slices.ContainsFunc(final.Copies, func(c string) bool { return strings.HasSuffix(c, " /manifold") }) {
		p.addf("Dockerfile: the final stage copies nothing to /manifold")
	}
	d := s.proxyDeployment(&problems{})
	if d == nil || len(d.Spec.Template.Spec.Containers) == 0 {
		return
	}
	c := &d.Spec.Template.Spec.Containers[0]
	if !slices.Equal(final.Cmd, c.Args) {
		p.addf("Dockerfile: CMD %q differs from the Deployment's args %q", final.Cmd, c.Args)
	}
	var ports []string
	for _, port := range c.Ports {
		ports = append(ports, strconv.Itoa(port.ContainerPort))
	}
	if !slices.Equal(slices.Sorted(slices.Values(final.Expose)), slices.Sorted(slices.Values(ports))) {
		p.addf("Dockerfile: EXPOSE %v, want the container ports %v", final.Expose, ports)
	}
}
