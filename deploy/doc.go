// Package deploy holds Manifold's deployment files, and its tests check
// them; it has no Go API.
//
//	Dockerfile                   multi-stage build: a static binary on distroless, non-root
//	Dockerfile.dockerignore      the build context's exclusions (BuildKit reads it beside the Dockerfile)
//	kubernetes/kustomization.yaml  kubectl apply -k deploy/kubernetes
//	kubernetes/configmap.yaml    the manifold config file
//	kubernetes/deployment.yaml   replicas, probes, drain on shutdown, security context
//	kubernetes/service.yaml      the proxy's Service and an example headless Service of fan-out nodes
//	kubernetes/pdb.yaml          PodDisruptionBudget
//	kubernetes/hpa.yaml          HorizontalPodAutoscaler on CPU
//
// Build the image from the repository root:
//
//	docker build -f deploy/Dockerfile -t manifold .
//
// The tests decode every manifest strictly (a misspelt field is an error)
// and check that the pieces agree with each other and with the binary:
// selectors match the pod labels, probes reach paths the admin endpoint
// serves on a port the container declares, Services target declared ports,
// the embedded config passes Manifold's own validation with the admin
// listener on the pod IP, the grace period outlasts the preStop delay plus
// the config's drain_timeout, and the Dockerfile's Go version is go.mod's.
package deploy
