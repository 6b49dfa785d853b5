package xds_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/manifold-grpc/manifold/config"
	"github.com/manifold-grpc/manifold/xds"
)

const goodBootstrap = `{
  "node": {"id": "manifold-0"},
  "xds_servers": [{
    "server_uri": "istiod.istio-system.svc:15010",
    "channel_creds": [{"type": "insecure"}],
    "server_features": ["xds_v3"]
  }]
}`

func TestValidateBootstrap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, json, wantErr string
	}{
		{name: "minimal", json: goodBootstrap},
		{name: "first supported creds type is enough", json: `{"xds_servers":[{"server_uri":"cp:15010","channel_creds":[{"type":"spiffe-magic"},{"type":"tls"}]}]}`},
		{name: "google_default", json: `{"xds_servers":[{"server_uri":"trafficdirector.googleapis.com:443","channel_creds":[{"type":"google_default"}]}]}`},
		{name: "not JSON", json: `xds_servers: []`, wantErr: "not a bootstrap JSON object"},
		{name: "JSON array", json: `[]`, wantErr: "not a bootstrap JSON object"},
		{name: "no servers", json: `{"node":{"id":"n"}}`, wantErr: "xds_servers: at least one server is required"},
		{name: "empty servers", json: `{"xds_servers":[]}`, wantErr: "xds_servers: at least one server is required"},
		{name: "no server_uri", json: `{"xds_servers":[{"channel_creds":[{"type":"insecure"}]}]}`, wantErr: "xds_servers[0].server_uri: required"},
		{name: "second server without creds", json: `{"xds_servers":[{"server_uri":"a:1","channel_creds":[{"type":"insecure"}]},{"server_uri":"b:1"}]}`, wantErr: "xds_servers[1].channel_creds: required"},
		{name: "unsupported creds", json: `{"xds_servers":[{"server_uri":"a:1","channel_creds":[{"type":"magic"}]}]}`, wantErr: `xds_servers[0].channel_creds: no supported type among "magic"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := xds.ValidateBootstrap([]byte(tc.json))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ValidateBootstrap: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("ValidateBootstrap: got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestCheckBootstrap sets the environment, so it is not parallel.
func TestCheckBootstrap(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(good, []byte(goodBootstrap), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"xds_servers":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, config, wantErr string
	}{
		{name: "neither variable", wantErr: "xds: no bootstrap: set GRPC_XDS_BOOTSTRAP to a bootstrap file or GRPC_XDS_BOOTSTRAP_CONFIG to its JSON"},
		{name: "file", file: good},
		{name: "config", config: goodBootstrap},
		{name: "missing file", file: filepath.Join(dir, "missing.json"), wantErr: "xds: bootstrap file (GRPC_XDS_BOOTSTRAP): open "},
		{name: "incomplete file", file: bad, wantErr: "xds: bootstrap file " + bad + " (GRPC_XDS_BOOTSTRAP): xds_servers: at least one server is required"},
		{name: "incomplete config", config: `{}`, wantErr: "xds: bootstrap (GRPC_XDS_BOOTSTRAP_CONFIG): xds_servers: at least one server is required"},
		{name: "file wins over config", file: bad, config: goodBootstrap, wantErr: "(GRPC_XDS_BOOTSTRAP): xds_servers"},
		{name: "good file wins over bad config", file: good, config: `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(xds.BootstrapFileEnv, tc.file)
			t.Setenv(xds.BootstrapConfigEnv, tc.config)
			err := xds.CheckBootstrap()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("CheckBootstrap: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("CheckBootstrap: got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestConfigRefusesXDSWithoutBootstrap: with this package imported, a
// config file with an xds:/// cluster loads only when the process has a
// usable bootstrap, and otherwise fails naming the field.
func TestConfigRefusesXDSWithoutBootstrap(t *testing.T) {
	file := []byte("listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: users, target: \"xds:///users\"}]\nroutes: [{name: r, route: users}]\n")
	t.Setenv(xds.BootstrapFileEnv, "")
	t.Setenv(xds.BootstrapConfigEnv, "")
	_, err := config.Parse("m.yaml", file, func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "m.yaml:2:34: clusters[0].target: xds: no bootstrap") {
		t.Fatalf("without a bootstrap: %v", err)
	}
	t.Setenv(xds.BootstrapConfigEnv, `{"node": {"id": "n"}, "xds_servers": [{"server_uri": "127.0.0.1:1", "channel_creds": [{"type": "insecure"}]}]}`)
	if _, err := config.Parse("m.yaml", file, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatalf("with a bootstrap: %v", err)
	}
}
