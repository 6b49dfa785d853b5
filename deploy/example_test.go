package deploy_test

import "fmt"

// The objects that kubectl apply -k deploy/kubernetes creates.
func Example() {
	m, err := loadManifests("kubernetes")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range m.Docs {
		if d.Kind != "Kustomization" {
			fmt.Printf("%-24s %-24s %s\n", d.Kind, d.Metadata.Name, d.File)
		}
	}
	// Output:
	// ConfigMap                manifold                 configmap.yaml
	// Deployment               manifold                 deployment.yaml
	// HorizontalPodAutoscaler  manifold                 hpa.yaml
	// PodDisruptionBudget      manifold                 pdb.yaml
	// Service                  manifold                 service.yaml
	// Service                  machine-nodes            service.yaml
}
