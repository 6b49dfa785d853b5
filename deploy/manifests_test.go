package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// The manifests are decoded into these local structs, which name only the
// Kubernetes fields the manifests use, and decoded strictly: a field the
// structs do not know (a typo such as "readinesProbe", or a field added
// without a check) fails the test. k8s.io/api would give the full schema
// but brings k8s.io/apimachinery and a dozen more modules into go.sum for
// six small files.

// typeMeta and objectMeta are common to every object.
type typeMeta struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
}

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// intOrString is Kubernetes' IntOrString: a port number or name, a count or
// a percentage.
type intOrString struct {
	Int    int
	Str    string
	IsName bool
}

func (v *intOrString) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a number or a string", n.Line)
	}
	if i, err := strconv.Atoi(n.Value); err == nil && n.Tag == "!!int" {
		v.Int = i
		return nil
	}
	v.Str, v.IsName = n.Value, true
	return nil
}

func (v intOrString) String() string {
	if v.IsName {
		return v.Str
	}
	return strconv.Itoa(v.Int)
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type configMap struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta        `yaml:"metadata"`
	Data     map[string]string `yaml:"data"`
}

type deployment struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Replicas             *int          `yaml:"replicas"`
		RevisionHistoryLimit *int          `yaml:"revisionHistoryLimit"`
		Selector             labelSelector `yaml:"selector"`
		Strategy             struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxSurge       intOrString `yaml:"maxSurge"`
				MaxUnavailable intOrString `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int  `yaml:"terminationGracePeriodSeconds"`
	AutomountServiceAccountToken  *bool `yaml:"automountServiceAccountToken"`
	SecurityContext               *struct {
		RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
		RunAsUser      *int64 `yaml:"runAsUser"`
		RunAsGroup     *int64 `yaml:"runAsGroup"`
		SeccompProfile *struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	TopologySpreadConstraints []struct {
		MaxSkew           int           `yaml:"maxSkew"`
		TopologyKey       string        `yaml:"topologyKey"`
		WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
		LabelSelector     labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			ResourceFieldRef *struct {
				ContainerName string `yaml:"containerName"`
				Resource      string `yaml:"resource"`
				Divisor       string `yaml:"divisor"`
			} `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             *struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string      `yaml:"path"`
		Port intOrString `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
}

type service struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Type      string            `yaml:"type"`
		ClusterIP string            `yaml:"clusterIP"`
		Selector  map[string]string `yaml:"selector"`
		Ports     []servicePort     `yaml:"ports"`
	} `yaml:"spec"`
}

type servicePort struct {
	Name        string      `yaml:"name"`
	Port        int         `yaml:"port"`
	TargetPort  intOrString `yaml:"targetPort"`
	Protocol    string      `yaml:"protocol"`
	AppProtocol string      `yaml:"appProtocol"`
}

type podDisruptionBudget struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		MaxUnavailable *intOrString   `yaml:"maxUnavailable"`
		MinAvailable   *intOrString   `yaml:"minAvailable"`
		Selector       *labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type horizontalPodAutoscaler struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas *int `yaml:"minReplicas"`
		MaxReplicas int  `yaml:"maxReplicas"`
		Metrics     []struct {
			Type     string `yaml:"type"`
			Resource *struct {
				Name   string `yaml:"name"`
				Target struct {
					Type               string `yaml:"type"`
					AverageUtilization *int   `yaml:"averageUtilization"`
				} `yaml:"target"`
			} `yaml:"resource"`
		} `yaml:"metrics"`
		Behavior *struct {
			ScaleDown *scalingRules `yaml:"scaleDown"`
			ScaleUp   *scalingRules `yaml:"scaleUp"`
		} `yaml:"behavior"`
	} `yaml:"spec"`
}

type scalingRules struct {
	StabilizationWindowSeconds *int `yaml:"stabilizationWindowSeconds"`
	Policies                   []struct {
		Type          string `yaml:"type"`
		Value         int    `yaml:"value"`
		PeriodSeconds int    `yaml:"periodSeconds"`
	} `yaml:"policies"`
}

type kustomization struct {
	typeMeta  `yaml:",inline"`
	Namespace string `yaml:"namespace"`
	Labels    []struct {
		Pairs            map[string]string `yaml:"pairs"`
		IncludeSelectors bool              `yaml:"includeSelectors"`
		IncludeTemplates bool              `yaml:"includeTemplates"`
	} `yaml:"labels"`
	Resources []string `yaml:"resources"`
}

// doc is one YAML document of a manifest file.
type doc struct {
	File string // base name
	Line int    // first line of the document
	typeMeta
	Metadata objectMeta
}

func (d doc) String() string {
	return fmt.Sprintf("%s:%d: %s %q", d.File, d.Line, d.Kind, d.Metadata.Name)
}

// manifests is everything under kubernetes/, decoded.
type manifests struct {
	Docs           []doc
	Files          []string // base names of the YAML files
	ConfigMaps     []*configMap
	Deployments    []*deployment
	Services       []*service
	PDBs           []*podDisruptionBudget
	HPAs           []*horizontalPodAutoscaler
	Kustomizations []*kustomization
}

// loadManifests decodes every document of every YAML file in dir strictly
// into the struct of its kind. Unknown kinds and fields are errors.
func loadManifests(dir string) (*manifests, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no YAML files in %s", dir)
	}
	sort.Strings(paths)
	m := &manifests{}
	var errs []error
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		file := filepath.Base(path)
		m.Files = append(m.Files, file)
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var node yaml.Node
			err := dec.Decode(&node)
			if err == io.EOF {
				break
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", file, err))
				break
			}
			if err := m.add(file, &node); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return m, errors.Join(errs...)
}

// add decodes one document by its kind.
func (m *manifests) add(file string, node *yaml.Node) error {
	var head struct {
		typeMeta `yaml:",inline"`
		Metadata objectMeta `yaml:"metadata"`
	}
	if err := node.Decode(&head); err != nil {
		return fmt.Errorf("%s:%d: %w", file, node.Line, err)
	}
	d := doc{File: file, Line: node.Line, typeMeta: head.typeMeta, Metadata: head.Metadata}
	m.Docs = append(m.Docs, d)
	// Node.Decode cannot reject unknown fields; a Decoder can.
	text, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	strict := func(v any) error {
		dec := yaml.NewDecoder(bytes.NewReader(text))
		dec.KnownFields(true)
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("%v: %w", d, err)
		}
		return nil
	}
	switch d.APIVersion + " " + d.Kind {
	case "v1 ConfigMap":
		v := &configMap{}
		m.ConfigMaps = append(m.ConfigMaps, v)
		return strict(v)
	case "apps/v1 Deployment":
		v := &deployment{}
		m.Deployments = append(m.Deployments, v)
		return strict(v)
	case "v1 Service":
		v := &service{}
		m.Services = append(m.Services, v)
		return strict(v)
	case "policy/v1 PodDisruptionBudget":
		v := &podDisruptionBudget{}
		m.PDBs = append(m.PDBs, v)
		return strict(v)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		v := &horizontalPodAutoscaler{}
		m.HPAs = append(m.HPAs, v)
		return strict(v)
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		v := &kustomization{}
		m.Kustomizations = append(m.Kustomizations, v)
		return strict(v)
	}
	return fmt.Errorf("%v: apiVersion %q, kind %q: not a kind these tests know; add a struct and checks for it", d, d.APIVersion, d.Kind)
}
