package auth

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Defaults of [Config] and [Provider].
const (
	// DefaultHeader carries the bearer token.
	DefaultHeader = "authorization"
	// DefaultRefreshInterval is how often a JWKS URL is fetched again.
	DefaultRefreshInterval = 5 * time.Minute
	// DefaultUnknownKIDRefreshInterval is the least time between the
	// fetches that tokens with an unknown key id trigger.
	DefaultUnknownKIDRefreshInterval = time.Minute
	// DefaultFetchTimeout bounds one fetch of a JWKS URL.
	DefaultFetchTimeout = 10 * time.Second
	// MaxTokenSize is the largest token the filter parses, in bytes. Larger
	// tokens are refused before parsing.
	MaxTokenSize = 8 << 10
	// MinHMACSecretSize is the shortest HMAC secret the filter accepts, in
	// bytes.
	MinHMACSecretSize = 32
	// DefaultCacheSize is how many verified tokens the filter remembers.
	DefaultCacheSize = 1000
)

func init() {
	pipeline.Register(pipeline.Module{Name: "auth", New: func() pipeline.FilterConfig { return new(Config) }})
}

// Config is the auth filter's configuration. The zero value is not valid:
// at least one provider is required.
type Config struct {
	// Providers are the token issuers the filter trusts. At least one is
	// required. A token is checked against the provider whose issuer it
	// names, among those its rule allows.
	Providers []Provider `yaml:"providers"`
	// Rules choose, by method, what a call needs. The first rule whose
	// methods match the call applies. A call that no rule matches must
	// carry a valid token from any provider, as with action "require".
	Rules []Rule `yaml:"rules"`
	// Header is the request header that carries "Bearer <token>"; the
	// scheme is case-insensitive. Lowercase. Default "authorization".
	Header string `yaml:"header"`
	// ForwardClaims maps claim names to request headers that carry the
	// verified claim upstream, e.g. {sub: x-jwt-sub}. Strings, numbers and
	// booleans are forwarded as text, lists of them joined with ","; other
	// values, and text that is not printable ASCII, are not forwarded. The
	// client's own headers of these names are always removed, on every
	// call, so that a client cannot forge them.
	ForwardClaims map[string]string `yaml:"forward_claims"`
	// KeepToken forwards the token header upstream. By default it is
	// removed before the call goes upstream, on every call.
	KeepToken bool `yaml:"keep_token"`
	// CacheSize is how many verified tokens the filter remembers, so that
	// a token sent again is neither decoded nor its signature checked
	// again: 0 means the default, 1000; -1 turns the cache off. Only
	// tokens that passed verification are kept, each with the provider
	// that verified it, and the least recently used goes when the cache is
	// full. An entry takes about twice its token's size and half a
	// kilobyte more: the default 1000 take about 1 MB with tokens of a
	// few hundred bytes, at most about 17 MB with tokens of
	// [MaxTokenSize]. A remembered token is still refused once it
	// expires ("exp", "nbf" and "iat" are checked on every call, with the
	// provider's leeway), by a rule that does not accept its provider, and
	// after its provider's JWKS URL publishes a changed key set; a rule's
	// required claims are checked on every call.
	CacheSize int `yaml:"cache_size"`
}

// Provider is one trusted token issuer and the keys that verify its tokens.
// Exactly one of PEMFiles, HMACSecretFile, JWKSFile and JWKSURL is set.
type Provider struct {
	// Name identifies the provider in rules and logs. Required, unique.
	Name string `yaml:"name"`
	// Issuer is the required "iss" claim. Required, unique among
	// providers.
	Issuer string `yaml:"issuer"`
	// Audiences, when set, are the accepted "aud" values: a token must
	// name at least one of them. When empty, "aud" is not checked.
	Audiences []string `yaml:"audiences"`
	// Algorithms are the accepted signing algorithms ("alg"). Required:
	// there is no default. One or more of RS256, RS384, RS512, PS256,
	// PS384, PS512, ES256, ES384, ES512, EdDSA (asymmetric keys), or
	// HS256, HS384, HS512 (only with hmac_secret_file). "none" is never
	// accepted.
	Algorithms []string `yaml:"algorithms"`
	// Leeway is the clock skew allowed when checking "exp", "nbf" and
	// "iat". Default 0.
	Leeway time.Duration `yaml:"leeway"`
	// CheckIssuedAt refuses tokens whose "iat" is in the future. Tokens
	// must always have an "exp"; a "nbf" is always honored.
	CheckIssuedAt bool `yaml:"check_iat"`

	// PEMFiles are files of PEM public keys ("PUBLIC KEY", "RSA PUBLIC
	// KEY") or certificates ("CERTIFICATE") whose keys verify tokens: RSA
	// (at least 2048 bits), ECDSA (P-256, P-384, P-521) or Ed25519. A
	// token's "kid" is ignored; every key that fits its algorithm is tried.
	PEMFiles []string `yaml:"pem_files"`
	// HMACSecretFile is a file holding the shared HMAC secret, at least 32
	// bytes; one trailing newline is ignored. Only with HS* algorithms.
	HMACSecretFile string `yaml:"hmac_secret_file"`
	// JWKSFile is a local JSON Web Key Set file, read once at start.
	JWKSFile string `yaml:"jwks_file"`
	// JWKSURL is a JSON Web Key Set to fetch, over https (http only to a
	// loopback address). It is fetched at start and every
	// refresh_interval, and again when a token names an unknown "kid"
	// (at most once per unknown_kid_refresh_interval). If it cannot be
	// fetched, the keys of the last good fetch are kept; while there are
	// none, tokens of this provider are refused (UNAUTHENTICATED) and
	// [Filter.Ready] reports the failure.
	JWKSURL string `yaml:"jwks_url"`
	// RefreshInterval is how often jwks_url is fetched. Default 5m.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// UnknownKIDRefreshInterval is the least time between the fetches of
	// jwks_url that tokens with an unknown "kid" trigger. Default 1m.
	UnknownKIDRefreshInterval time.Duration `yaml:"unknown_kid_refresh_interval"`
	// FetchTimeout bounds one fetch of jwks_url. Default 10s.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
}

// Action is what a [Rule] requires of a call.
type Action string

// The actions of a rule.
const (
	// Require needs a valid token (the default).
	Require Action = "require"
	// AllowMissing lets calls without a token through, unauthenticated,
	// but verifies a token that is present and refuses it if invalid.
	AllowMissing Action = "allow_missing"
	// Public checks nothing. The token is still removed before the call
	// goes upstream (unless keep_token), and so are forged claim headers.
	Public Action = "public"
)

// Rule says what the calls to some methods need.
type Rule struct {
	// Methods are the method patterns the rule applies to: an exact
	// method "/pkg.Service/Method", a prefix ending in "*" such as
	// "/pkg.Service/*" or "/pkg.*", or "*" for every method. Required.
	Methods []string `yaml:"methods"`
	// Action is "require" (default), "allow_missing" or "public".
	Action Action `yaml:"action"`
	// Providers, when set, are the names of the only providers whose
	// tokens the rule accepts. Default: every provider.
	Providers []string `yaml:"providers"`
	// Claims are required claim values: each claim must equal its value,
	// or, for a space-separated string such as "scope", contain it as a
	// word, or, for a list, contain it. A verified token without them gets
	// PERMISSION_DENIED. Only with action "require".
	Claims map[string]string `yaml:"claims"`
}

// algKeys names, for each accepted algorithm, the kind of key it needs.
var algKeys = map[string]keyKind{
	"RS256": rsaKey, "RS384": rsaKey, "RS512": rsaKey,
	"PS256": rsaKey, "PS384": rsaKey, "PS512": rsaKey,
	"ES256": ecP256Key, "ES384": ecP384Key, "ES512": ecP521Key,
	"EdDSA": ed25519Key,
	"HS256": hmacKey, "HS384": hmacKey, "HS512": hmacKey,
}

// withDefaults returns c with defaults filled in.
func (c Config) withDefaults() Config {
	if c.Header == "" {
		c.Header = DefaultHeader
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	ps := make([]Provider, len(c.Providers))
	for i, p := range c.Providers {
		if p.JWKSURL != "" {
			if p.RefreshInterval == 0 {
				p.RefreshInterval = DefaultRefreshInterval
			}
			if p.UnknownKIDRefreshInterval == 0 {
				p.UnknownKIDRefreshInterval = DefaultUnknownKIDRefreshInterval
			}
			if p.FetchTimeout == 0 {
				p.FetchTimeout = DefaultFetchTimeout
			}
		}
		ps[i] = p
	}
	c.Providers = ps
	return c
}

// Validate reports every problem with c, naming each field by its yaml
// path, e.g. "providers[0].issuer: required". It reads no files: missing or
// bad key files are reported by [New].
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.Header != "" {
		if err := checkHeaderName(c.Header); err != nil {
			add("header: %v", err)
		}
	}
	header := c.Header
	if header == "" {
		header = DefaultHeader
	}
	if c.CacheSize < -1 {
		add("cache_size: %d is not -1 (off), 0 (the default) or a number of tokens", c.CacheSize)
	}

	if len(c.Providers) == 0 {
		add("providers: at least one provider is required")
	}
	names := map[string]int{}
	issuers := map[string]int{}
	for i, p := range c.Providers {
		path := fmt.Sprintf("providers[%d]", i)
		errs = append(errs, p.validate(path)...)
		if p.Name != "" {
			if j, dup := names[p.Name]; dup {
				add("%s.name: %q is also the name of providers[%d]", path, p.Name, j)
			} else {
				names[p.Name] = i
			}
		}
		if p.Issuer != "" {
			if j, dup := issuers[p.Issuer]; dup {
				add("%s.issuer: %q is also the issuer of providers[%d]", path, p.Issuer, j)
			} else {
				issuers[p.Issuer] = i
			}
		}
	}

	for i, r := range c.Rules {
		path := fmt.Sprintf("rules[%d]", i)
		if len(r.Methods) == 0 {
			add("%s.methods: at least one method pattern is required", path)
		}
		for j, m := range r.Methods {
			if _, err := parsePattern(m); err != nil {
				add("%s.methods[%d]: %v", path, j, err)
			}
		}
		switch r.Action {
		case "", Require, AllowMissing, Public:
		default:
			add("%s.action: %q is not one of require, allow_missing, public", path, r.Action)
		}
		for j, name := range r.Providers {
			if _, ok := names[name]; !ok {
				add("%s.providers[%d]: no provider is named %q", path, j, name)
			}
		}
		if r.Action == Public && len(r.Providers) > 0 {
			add("%s.providers: not allowed with action public, which checks no token", path)
		}
		if len(r.Claims) > 0 && (r.Action == AllowMissing || r.Action == Public) {
			add("%s.claims: only allowed with action require (a caller could leave the token out)", path)
		}
		for _, claim := range sortedKeys(r.Claims) {
			if claim == "" {
				add("%s.claims: empty claim name", path)
			} else if r.Claims[claim] == "" {
				add("%s.claims.%s: empty value", path, claim)
			}
		}
	}

	targets := map[string]string{}
	for _, claim := range sortedKeys(c.ForwardClaims) {
		h := c.ForwardClaims[claim]
		path := "forward_claims." + claim
		switch {
		case claim == "":
			add("forward_claims: empty claim name")
		case h == header:
			add("%s: %q is the token header", path, h)
		default:
			if err := checkHeaderName(h); err != nil {
				add("%s: %v", path, err)
			} else if other, dup := targets[h]; dup {
				add("%s: header %q also carries claim %q", path, h, other)
			} else {
				targets[h] = claim
			}
		}
	}
	return errors.Join(errs...)
}

// validate checks one provider.
func (p Provider) validate(path string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.Name == "" {
		add("%s.name: required", path)
	}
	if p.Issuer == "" {
		add("%s.issuer: required", path)
	}
	for i, a := range p.Audiences {
		if a == "" {
			add("%s.audiences[%d]: empty audience", path, i)
		}
	}
	if len(p.Algorithms) == 0 {
		add("%s.algorithms: required (there is no default)", path)
	}
	hmacAlgs, otherAlgs := 0, 0
	for i, a := range p.Algorithms {
		kind, ok := algKeys[a]
		switch {
		case strings.EqualFold(a, "none"):
			add("%s.algorithms[%d]: %q is never allowed", path, i, a)
		case !ok:
			add("%s.algorithms[%d]: unknown algorithm %q", path, i, a)
		case kind == hmacKey:
			hmacAlgs++
		default:
			otherAlgs++
		}
	}
	if p.Leeway < 0 {
		add("%s.leeway: must not be negative", path)
	}

	sources := 0
	for _, set := range []bool{len(p.PEMFiles) > 0, p.HMACSecretFile != "", p.JWKSFile != "", p.JWKSURL != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		add("%s: exactly one of pem_files, hmac_secret_file, jwks_file, jwks_url is required", path)
	}
	for i, f := range p.PEMFiles {
		if f == "" {
			add("%s.pem_files[%d]: empty file name", path, i)
		}
	}
	if p.HMACSecretFile != "" && otherAlgs > 0 {
		add("%s.algorithms: only HS256, HS384, HS512 work with hmac_secret_file", path)
	}
	if p.HMACSecretFile == "" && hmacAlgs > 0 {
		add("%s.algorithms: HS256, HS384, HS512 need hmac_secret_file", path)
	}
	if p.JWKSURL != "" {
		if err := checkJWKSURL(p.JWKSURL); err != nil {
			add("%s.jwks_url: %v", path, err)
		}
	} else if p.RefreshInterval != 0 || p.UnknownKIDRefreshInterval != 0 || p.FetchTimeout != 0 {
		add("%s: refresh_interval, unknown_kid_refresh_interval, fetch_timeout are only for jwks_url", path)
	}
	if p.RefreshInterval < 0 {
		add("%s.refresh_interval: must not be negative", path)
	}
	if p.UnknownKIDRefreshInterval < 0 {
		add("%s.unknown_kid_refresh_interval: must not be negative", path)
	}
	if p.FetchTimeout < 0 {
		add("%s.fetch_timeout: must not be negative", path)
	}
	return errs
}

// checkJWKSURL accepts https URLs, and http URLs to loopback hosts.
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("must be https (http only to a loopback address)")
	}
	return fmt.Errorf("scheme %q is not https", u.Scheme)
}

// checkHeaderName accepts lowercase metadata keys that a filter may set on
// the upstream request.
func checkHeaderName(h string) error {
	switch {
	case h == "":
		return errors.New("empty header name")
	case !pipeline.ValidPair(h, ""):
		return fmt.Errorf("%q is not a lowercase header name", h)
	case strings.HasSuffix(h, "-bin"):
		return fmt.Errorf("%q is a binary header", h)
	case pipeline.IsHopByHop(h), strings.HasPrefix(h, "grpc-"), strings.HasPrefix(h, pipeline.InternalPrefix):
		return fmt.Errorf("%q is reserved", h)
	}
	return nil
}

// Build makes the filter; it implements [pipeline.FilterConfig]. The
// filter holds background fetches when a provider has a jwks_url: close it
// (it is an [io.Closer]) when the chain is no longer used.
func (c *Config) Build(env pipeline.BuildEnv) (pipeline.Filter, error) {
	var opts []Option
	if env.Logger != nil {
		opts = append(opts, WithLogger(env.Logger))
	}
	return New(*c, opts...)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var _ pipeline.FilterConfig = (*Config)(nil)
