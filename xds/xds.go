package xds

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	_ "google.golang.org/grpc/xds" // registers the xds resolver, balancers and HTTP filters
	"google.golang.org/grpc/xds/bootstrap"

	"github.com/manifold-grpc/manifold/config"
)

// A config file with an xds:/// cluster is refused at load time, naming the
// field, when the process has no usable bootstrap.
func init() { config.RegisterTargetCheck(Scheme, CheckBootstrap) }

// Scheme is the target scheme grpc-go's xDS resolver registers:
// "xds:///name" asks the control plane for the Listener "name".
const Scheme = "xds"

// The bootstrap environment variables grpc-go reads; see the package
// documentation.
const (
	// BootstrapFileEnv names a bootstrap JSON file. It wins over
	// BootstrapConfigEnv.
	BootstrapFileEnv = "GRPC_XDS_BOOTSTRAP"
	// BootstrapConfigEnv holds the bootstrap JSON itself.
	BootstrapConfigEnv = "GRPC_XDS_BOOTSTRAP_CONFIG"
)

// CheckBootstrap reports whether grpc-go will find a usable xDS bootstrap
// in the environment, so that a binary with xds:/// clusters can refuse to
// start instead of failing every call with UNAVAILABLE. It reads the
// variables as grpc-go does (the file when BootstrapFileEnv is set, else
// BootstrapConfigEnv) and checks the result with [ValidateBootstrap].
//
// grpc-go captures both variables when the process starts; call
// CheckBootstrap at startup, not after changing them.
func CheckBootstrap() error {
	if name := os.Getenv(BootstrapFileEnv); name != "" {
		data, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("xds: bootstrap file (%s): %w", BootstrapFileEnv, err)
		}
		if err := ValidateBootstrap(data); err != nil {
			return fmt.Errorf("xds: bootstrap file %s (%s): %w", name, BootstrapFileEnv, err)
		}
		return nil
	}
	if data := os.Getenv(BootstrapConfigEnv); data != "" {
		if err := ValidateBootstrap([]byte(data)); err != nil {
			return fmt.Errorf("xds: bootstrap (%s): %w", BootstrapConfigEnv, err)
		}
		return nil
	}
	return fmt.Errorf("xds: no bootstrap: set %s to a bootstrap file or %s to its JSON", BootstrapFileEnv, BootstrapConfigEnv)
}

// ValidateBootstrap checks the parts of a bootstrap JSON that grpc-go
// requires before it can reach a management server: at least one entry in
// xds_servers, each with a server_uri and a channel_creds type grpc-go
// supports ("insecure", "tls", "google_default", or one registered with
// [bootstrap.RegisterChannelCredentials]). It does not build credentials
// or contact the server, and leaves the rest (node, authorities,
// certificate providers) to grpc-go.
func ValidateBootstrap(data []byte) error {
	var doc struct {
		XDSServers []struct {
			ServerURI    string `json:"server_uri"`
			ChannelCreds []struct {
				Type string `json:"type"`
			} `json:"channel_creds"`
		} `json:"xds_servers"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("not a bootstrap JSON object: %w", err)
	}
	if len(doc.XDSServers) == 0 {
		return errors.New("xds_servers: at least one server is required")
	}
	for i, s := range doc.XDSServers {
		if s.ServerURI == "" {
			return fmt.Errorf("xds_servers[%d].server_uri: required", i)
		}
		var types []string
		supported := false
		for _, c := range s.ChannelCreds {
			types = append(types, fmt.Sprintf("%q", c.Type))
			if bootstrap.GetChannelCredentials(c.Type) != nil {
				supported = true
			}
		}
		switch {
		case len(types) == 0:
			return fmt.Errorf("xds_servers[%d].channel_creds: required (e.g. [{\"type\": \"insecure\"}])", i)
		case !supported:
			return fmt.Errorf("xds_servers[%d].channel_creds: no supported type among %s (want insecure, tls or google_default)", i, strings.Join(types, ", "))
		}
	}
	return nil
}
