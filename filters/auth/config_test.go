package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/manifold-grpc/manifold/filters/auth"
	"github.com/manifold-grpc/manifold/pipeline"
)

// validConfig is a config that passes Validate; tests break one field.
func validConfig() auth.Config {
	return auth.Config{
		Providers: []auth.Provider{{
			Name:       "corp",
			Issuer:     "https://login.test/",
			Algorithms: []string{"RS256"},
			JWKSURL:    "https://login.test/jwks.json",
		}, {
			Name:           "ci",
			Issuer:         "ci.test",
			Algorithms:     []string{"HS256"},
			HMACSecretFile: "/etc/secret",
		}},
		Rules: []auth.Rule{{Methods: []string{"/pkg.Svc/*"}, Providers: []string{"corp"}, Claims: map[string]string{"scope": "x"}}},
	}
}

// TestValidate names every bad field by its yaml path.
func TestValidate(t *testing.T) {
	t.Parallel()
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		change func(c *auth.Config)
		want   []string // substrings of the error, one per problem
	}{
		{"no providers", func(c *auth.Config) { c.Providers = nil; c.Rules = nil },
			[]string{"providers: at least one provider is required"}},
		{"no name", func(c *auth.Config) { c.Providers[0].Name = ""; c.Rules = nil },
			[]string{"providers[0].name: required"}},
		{"duplicate name", func(c *auth.Config) { c.Providers[1].Name = "corp" },
			[]string{`providers[1].name: "corp" is also the name of providers[0]`}},
		{"no issuer", func(c *auth.Config) { c.Providers[0].Issuer = "" },
			[]string{"providers[0].issuer: required"}},
		{"duplicate issuer", func(c *auth.Config) { c.Providers[1].Issuer = "https://login.test/" },
			[]string{`providers[1].issuer: "https://login.test/" is also the issuer of providers[0]`}},
		{"empty audience", func(c *auth.Config) { c.Providers[0].Audiences = []string{"a", ""} },
			[]string{"providers[0].audiences[1]: empty audience"}},
		{"no algorithms", func(c *auth.Config) { c.Providers[0].Algorithms = nil },
			[]string{"providers[0].algorithms: required"}},
		{"alg none", func(c *auth.Config) { c.Providers[0].Algorithms = []string{"RS256", "none"} },
			[]string{`providers[0].algorithms[1]: "none" is never allowed`}},
		{"alg NONE", func(c *auth.Config) { c.Providers[0].Algorithms = []string{"NONE"} },
			[]string{`providers[0].algorithms[0]: "NONE" is never allowed`}},
		{"unknown alg", func(c *auth.Config) { c.Providers[0].Algorithms = []string{"rs256"} },
			[]string{`providers[0].algorithms[0]: unknown algorithm "rs256"`}},
		{"HS with JWKS", func(c *auth.Config) { c.Providers[0].Algorithms = []string{"RS256", "HS256"} },
			[]string{"providers[0].algorithms: HS256, HS384, HS512 need hmac_secret_file"}},
		{"RS with HMAC secret", func(c *auth.Config) { c.Providers[1].Algorithms = []string{"HS256", "RS256"} },
			[]string{"providers[1].algorithms: only HS256, HS384, HS512 work with hmac_secret_file"}},
		{"negative leeway", func(c *auth.Config) { c.Providers[0].Leeway = -time.Second },
			[]string{"providers[0].leeway: must not be negative"}},
		{"no keys", func(c *auth.Config) { c.Providers[0].JWKSURL = "" },
			[]string{"providers[0]: exactly one of pem_files, hmac_secret_file, jwks_file, jwks_url is required"}},
		{"two key sources", func(c *auth.Config) { c.Providers[0].PEMFiles = []string{"k.pem"} },
			[]string{"providers[0]: exactly one of"}},
		{"empty PEM file name", func(c *auth.Config) {
			c.Providers[0].JWKSURL = ""
			c.Providers[0].PEMFiles = []string{""}
		}, []string{"providers[0].pem_files[0]: empty file name"}},
		{"plain http JWKS", func(c *auth.Config) { c.Providers[0].JWKSURL = "http://login.test/jwks.json" },
			[]string{"providers[0].jwks_url: must be https"}},
		{"JWKS scheme", func(c *auth.Config) { c.Providers[0].JWKSURL = "file:///etc/jwks.json" },
			[]string{"providers[0].jwks_url: no host"}},
		{"negative refresh", func(c *auth.Config) {
			c.Providers[0].RefreshInterval = -1
			c.Providers[0].UnknownKIDRefreshInterval = -1
			c.Providers[0].FetchTimeout = -1
		}, []string{
			"providers[0].refresh_interval: must not be negative",
			"providers[0].unknown_kid_refresh_interval: must not be negative",
			"providers[0].fetch_timeout: must not be negative",
		}},
		{"refresh without URL", func(c *auth.Config) { c.Providers[1].RefreshInterval = time.Minute },
			[]string{"providers[1]: refresh_interval, unknown_kid_refresh_interval, fetch_timeout are only for jwks_url"}},
		{"bad header", func(c *auth.Config) { c.Header = "Authorization" },
			[]string{`header: "Authorization" is not a lowercase header name`}},
		{"reserved header", func(c *auth.Config) { c.Header = "grpc-timeout" },
			[]string{`header: "grpc-timeout" is reserved`}},
		{"rule without methods", func(c *auth.Config) { c.Rules[0].Methods = nil },
			[]string{"rules[0].methods: at least one method pattern is required"}},
		{"bad patterns", func(c *auth.Config) { c.Rules[0].Methods = []string{"pkg.Svc/M", "/pkg.*/M", "/pkg.Svc", "*"} },
			[]string{
				`rules[0].methods[0]: "pkg.Svc/M" does not start with "/"`,
				`rules[0].methods[1]: "/pkg.*/M" has a "*" before its end`,
				`rules[0].methods[2]: "/pkg.Svc" is not a full method`,
			}},
		{"bad action", func(c *auth.Config) { c.Rules[0].Action = "deny" },
			[]string{`rules[0].action: "deny" is not one of require, allow_missing, public`}},
		{"unknown provider", func(c *auth.Config) { c.Rules[0].Providers = []string{"corp", "nobody"} },
			[]string{`rules[0].providers[1]: no provider is named "nobody"`}},
		{"providers on public", func(c *auth.Config) { c.Rules[0].Action = auth.Public; c.Rules[0].Claims = nil },
			[]string{"rules[0].providers: not allowed with action public"}},
		{"claims on allow_missing", func(c *auth.Config) { c.Rules[0].Action = auth.AllowMissing },
			[]string{"rules[0].claims: only allowed with action require"}},
		{"empty claim value", func(c *auth.Config) { c.Rules[0].Claims = map[string]string{"scope": ""} },
			[]string{"rules[0].claims.scope: empty value"}},
		{"forward to token header", func(c *auth.Config) { c.ForwardClaims = map[string]string{"sub": "authorization"} },
			[]string{`forward_claims.sub: "authorization" is the token header`}},
		{"forward to reserved header", func(c *auth.Config) {
			c.ForwardClaims = map[string]string{"sub": ":authority", "iss": "te", "aud": "x-manifold-aud", "a": "grpc-x", "b": "x-b-bin"}
		}, []string{
			`forward_claims.sub: ":authority" is not a lowercase header name`,
			`forward_claims.iss: "te" is reserved`,
			`forward_claims.aud: "x-manifold-aud" is reserved`,
			`forward_claims.a: "grpc-x" is reserved`,
			`forward_claims.b: "x-b-bin" is a binary header`,
		}},
		{"cache_size below -1", func(c *auth.Config) { c.CacheSize = -2 },
			[]string{"cache_size: -2 is not -1 (off), 0 (the default) or a number of tokens"}},
		{"forward twice to one header", func(c *auth.Config) { c.ForwardClaims = map[string]string{"a": "x-h", "b": "x-h"} },
			[]string{`forward_claims.b: header "x-h" also carries claim "a"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			lines := strings.Split(err.Error(), "\n")
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if len(lines) != len(tt.want) {
				t.Errorf("%d problems reported, want %d:\n%v", len(lines), len(tt.want), err)
			}
			if _, err := auth.New(c); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
}

// TestNewKeyErrors refuses bad key material at build time, naming the
// field.
func TestNewKeyErrors(t *testing.T) {
	t.Parallel()
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(keys().ec)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := publicPEM(t, &keys().rsa.PublicKey)
	pemProvider := func(algs []string, data []byte) auth.Provider {
		return auth.Provider{Name: "p", Issuer: "i", Algorithms: algs, PEMFiles: []string{writeFile(t, "k.pem", data)}}
	}
	hmacProvider := func(data []byte) auth.Provider {
		return auth.Provider{Name: "p", Issuer: "i", Algorithms: []string{"HS256"}, HMACSecretFile: writeFile(t, "secret", data)}
	}
	tests := []struct {
		name string
		p    auth.Provider
		want string
	}{
		{"short HMAC secret", hmacProvider([]byte(strings.Repeat("s", 31) + "\n")),
			"holds 31 bytes; at least 32 are required"},
		{"PEM as HMAC secret", hmacProvider(rsaPEM), "holds a PEM block, not a secret"},
		{"missing HMAC file", auth.Provider{Name: "p", Issuer: "i", Algorithms: []string{"HS256"}, HMACSecretFile: "/nonexistent/secret"},
			"providers[0].hmac_secret_file: open /nonexistent/secret"},
		{"private key PEM", pemProvider([]string{"ES256"}, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})),
			"is a private key; give the public key only"},
		{"weak RSA key", pemProvider([]string{"RS256"}, publicPEM(t, &weak.PublicKey)), "RSA key of 1024 bits"},
		{"no PEM block", pemProvider([]string{"RS256"}, []byte("hello")), "no PEM public key or certificate"},
		{"unsupported PEM type", pemProvider([]string{"RS256"}, pem.EncodeToMemory(&pem.Block{Type: "SECRET", Bytes: []byte{1}})),
			`unsupported PEM type "SECRET"`},
		{"algorithm without a key", pemProvider([]string{"RS256", "ES256"}, rsaPEM),
			"providers[0].algorithms: no key fits ES256"},
		{"curve does not fit", pemProvider([]string{"ES256"}, publicPEM(t, &p384.PublicKey)),
			"providers[0].algorithms: no key fits ES256"},
		{"missing PEM file", auth.Provider{Name: "p", Issuer: "i", Algorithms: []string{"RS256"}, PEMFiles: []string{"/nonexistent.pem"}},
			"providers[0].pem_files[0]: open /nonexistent.pem"},
		{"bad JWKS file", auth.Provider{Name: "p", Issuer: "i", Algorithms: []string{"RS256"}, JWKSFile: writeFile(t, "jwks.json", []byte("{"))},
			"providers[0].jwks_file"},
		{"empty JWKS file", auth.Provider{Name: "p", Issuer: "i", Algorithms: []string{"RS256"}, JWKSFile: writeFile(t, "jwks.json", []byte(`{"keys":[]}`))},
			"holds no usable key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := auth.New(auth.Config{Providers: []auth.Provider{tt.p}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() = %v, want an error with %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q lacks the filter's name", err)
			}
		})
	}
}

// TestRegistered finds the filter by name in the pipeline registry and
// builds it from its config.
func TestRegistered(t *testing.T) {
	t.Parallel()
	m, ok := pipeline.Lookup("auth")
	if !ok {
		t.Fatal(`no module "auth"`)
	}
	fc := m.New()
	cfg, ok := fc.(*auth.Config)
	if !ok {
		t.Fatalf("New() = %T, want *auth.Config", fc)
	}
	if err := cfg.Validate(); err == nil {
		t.Error("the empty config is valid")
	}
	cfg.Providers = staticProviders(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := fc.Build(pipeline.BuildEnv{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.(*auth.Filter).Close()
	if f.Name() != "auth" {
		t.Errorf("Name() = %q", f.Name())
	}
	if _, ok := f.(pipeline.RequestHeadersHook); !ok {
		t.Error("not a request headers hook")
	}
	if _, ok := f.(pipeline.RequestMessageHook); ok {
		t.Error("has a message hook")
	}
}
