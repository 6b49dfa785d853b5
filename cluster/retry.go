package cluster

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// Defaults of a [RetryPolicy]'s fields.
const (
	DefaultRetryMaxAttempts       = 3
	DefaultRetryInitialBackoff    = 100 * time.Millisecond
	DefaultRetryMaxBackoff        = time.Second
	DefaultRetryBackoffMultiplier = 2.0
)

// DefaultRetryBufferSize is grpc-go's limit on the request bytes one call
// keeps for replaying to a retry attempt (see [Config.RetryBufferSize]).
const DefaultRetryBufferSize = 256 << 10

// RetryPolicy retries calls to some methods of a cluster that fail with a
// retryable status, through grpc-go's own retry support (a retryPolicy in
// the cluster's default service config, gRFC A6).
//
// Retry only idempotent methods: a failed attempt may have been carried
// out by the upstream (UNAVAILABLE can come after the upstream acted, from
// a connection that broke before the answer), and the retry carries it
// out again.
//
// grpc-go retries an attempt only while nothing of the answer has reached
// the client: it retries when the upstream ends the attempt without
// response headers (a trailers-only status) or the attempt never reached
// an upstream, never once headers or a message came back. It keeps every
// request message sent so far for the replay, up to
// [Config.RetryBufferSize] per call; a call that sends more is no longer
// retried. Attempts are spaced by a random backoff between 0 and
// min(InitialBackoff × BackoffMultiplier^(n-1), MaxBackoff).
//
// gRFC A6 also describes hedging (sending a call again before the first
// attempt has failed). grpc-go does not implement it (grpc/grpc-go#2823)
// and silently ignores a hedgingPolicy, so Manifold offers none; fan-out
// policy first sends one call to several members and keeps the first
// success.
type RetryPolicy struct {
	// Methods are the calls the policy applies to: full method names
	// "/pkg.Service/Method", or a service name "pkg.Service" for all of
	// its methods. A method named here wins over its service named in
	// another policy. Each name may appear once in a cluster.
	Methods []string `yaml:"methods"`
	// MaxAttempts is how many attempts a call makes at most, the first
	// included: 2 to 5 (grpc-go caps it at 5). Default 3.
	MaxAttempts int `yaml:"max_attempts"`
	// InitialBackoff bounds the random wait before the first retry.
	// Default 100ms.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	// MaxBackoff bounds every wait between attempts. Default 1s.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// BackoffMultiplier grows the bound after each attempt. Default 2.
	BackoffMultiplier float64 `yaml:"backoff_multiplier"`
	// RetryableStatusCodes are the status codes that are retried, by name
	// as in the gRPC spec (UNAVAILABLE, RESOURCE_EXHAUSTED, …; case does
	// not matter). Default [UNAVAILABLE].
	RetryableStatusCodes []string `yaml:"retryable_status_codes"`
}

// RetryThrottling stops retries while too many calls fail, so that retries
// cannot multiply the load on a failing upstream (gRFC A6 throttling). The
// cluster keeps a token count that starts at MaxTokens; each failed call
// takes one token, each successful one gives back TokenRatio; while the
// count is at or below MaxTokens/2 no call is retried.
type RetryThrottling struct {
	// MaxTokens is where the count starts and its ceiling: 1 to 1000.
	MaxTokens int `yaml:"max_tokens"`
	// TokenRatio is the tokens a successful call gives back, above 0, with
	// up to three decimals (e.g. 0.1).
	TokenRatio float64 `yaml:"token_ratio"`
}

// withDefaults returns p with its zero fields set to their defaults.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultRetryMaxAttempts
	}
	if p.InitialBackoff == 0 {
		p.InitialBackoff = DefaultRetryInitialBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = max(DefaultRetryMaxBackoff, p.InitialBackoff)
	}
	if p.BackoffMultiplier == 0 {
		p.BackoffMultiplier = DefaultRetryBackoffMultiplier
	}
	if len(p.RetryableStatusCodes) == 0 {
		p.RetryableStatusCodes = []string{"UNAVAILABLE"}
	}
	return p
}

// parseCode returns the code named name, in the spelling of the gRPC spec
// and of service configs ("UNAVAILABLE"), in any case.
func parseCode(name string) (codes.Code, error) {
	var c codes.Code
	// grpc-go's own table of service-config code names; quoted, a number
	// is not a name.
	if err := c.UnmarshalJSON([]byte(`"` + strings.ToUpper(name) + `"`)); err != nil {
		return 0, fmt.Errorf("%q is not a status code name", name)
	}
	if c == codes.OK {
		return 0, fmt.Errorf("OK is not an error")
	}
	return c, nil
}

// methodName splits a Methods entry into the service config's service and
// method.
func methodName(s string) (service, method string, err error) {
	if rest, ok := strings.CutPrefix(s, "/"); ok {
		service, method, ok = strings.Cut(rest, "/")
		if !ok || service == "" || method == "" || strings.Contains(method, "/") {
			return "", "", fmt.Errorf("%q is not /pkg.Service/Method", s)
		}
	} else {
		service = s
		if service == "" || strings.Contains(service, "/") {
			return "", "", fmt.Errorf("%q is not a service name (pkg.Service) or /pkg.Service/Method", s)
		}
	}
	if strings.ContainsAny(s, " \t\n*") {
		return "", "", fmt.Errorf("%q is not a method or service name", s)
	}
	return service, method, nil
}

// validateRetry checks the retry fields of a cluster's config.
func validateRetry(policies []RetryPolicy, throttling *RetryThrottling, bufferSize int) error {
	seen := map[string]int{}
	for i, p := range policies {
		at := fmt.Sprintf("retry[%d]", i)
		if len(p.Methods) == 0 {
			return fmt.Errorf("%s.methods: at least one method or service is required", at)
		}
		for j, m := range p.Methods {
			if _, _, err := methodName(m); err != nil {
				return fmt.Errorf("%s.methods[%d]: %v", at, j, err)
			}
			if k, dup := seen[m]; dup {
				return fmt.Errorf("%s.methods[%d]: %q is already in retry[%d]", at, j, m, k)
			}
			seen[m] = i
		}
		switch {
		case p.MaxAttempts != 0 && (p.MaxAttempts < 2 || p.MaxAttempts > 5):
			return fmt.Errorf("%s.max_attempts: must be 2 to 5, not %d", at, p.MaxAttempts)
		case p.InitialBackoff < 0:
			return fmt.Errorf("%s.initial_backoff: must not be negative", at)
		case p.MaxBackoff < 0:
			return fmt.Errorf("%s.max_backoff: must not be negative", at)
		case p.MaxBackoff > 0 && p.MaxBackoff < p.InitialBackoff:
			return fmt.Errorf("%s.max_backoff: %v is less than initial_backoff %v", at, p.MaxBackoff, p.InitialBackoff)
		case p.BackoffMultiplier < 0 || math.IsNaN(p.BackoffMultiplier) || math.IsInf(p.BackoffMultiplier, 0):
			return fmt.Errorf("%s.backoff_multiplier: must be a positive number", at)
		}
		for j, name := range p.RetryableStatusCodes {
			if _, err := parseCode(name); err != nil {
				return fmt.Errorf("%s.retryable_status_codes[%d]: %v", at, j, err)
			}
		}
	}
	if t := throttling; t != nil {
		switch {
		case t.MaxTokens < 1 || t.MaxTokens > 1000:
			return fmt.Errorf("retry_throttling.max_tokens: must be 1 to 1000, not %d", t.MaxTokens)
		case !(t.TokenRatio >= 0.001) || math.IsInf(t.TokenRatio, 0):
			return fmt.Errorf("retry_throttling.token_ratio: must be at least 0.001")
		}
	}
	if bufferSize < 0 {
		return fmt.Errorf("retry_buffer_size: must not be negative")
	}
	return nil
}

// The JSON shapes of grpc's service config
// (https://github.com/grpc/grpc/blob/master/doc/service_config.md).
type (
	jsonServiceConfig struct {
		LoadBalancingConfig []map[string]struct{} `json:"loadBalancingConfig,omitempty"`
		MethodConfig        []jsonMethodConfig    `json:"methodConfig,omitempty"`
		RetryThrottling     *jsonThrottling       `json:"retryThrottling,omitempty"`
	}
	jsonMethodConfig struct {
		Name        []jsonName       `json:"name"`
		RetryPolicy *jsonRetryPolicy `json:"retryPolicy,omitempty"`
	}
	jsonName struct {
		Service string `json:"service"`
		Method  string `json:"method,omitempty"`
	}
	jsonRetryPolicy struct {
		MaxAttempts          int      `json:"maxAttempts"`
		InitialBackoff       string   `json:"initialBackoff"`
		MaxBackoff           string   `json:"maxBackoff"`
		BackoffMultiplier    float64  `json:"backoffMultiplier"`
		RetryableStatusCodes []string `json:"retryableStatusCodes"`
	}
	jsonThrottling struct {
		MaxTokens  int     `json:"maxTokens"`
		TokenRatio float64 `json:"tokenRatio"`
	}
)

// jsonDuration writes d as a protobuf JSON duration ("0.100000000s").
func jsonDuration(d time.Duration) string {
	return fmt.Sprintf("%d.%09ds", d/time.Second, d%time.Second)
}

// serviceConfig returns the cluster's default service config as JSON, or
// "" when there is nothing to set. lb is the load-balancing policy, or ""
// for the resolver's choice. The config must be valid.
func serviceConfig(lb string, policies []RetryPolicy, throttling *RetryThrottling) (string, error) {
	var sc jsonServiceConfig
	if lb != "" {
		sc.LoadBalancingConfig = []map[string]struct{}{{lb: {}}}
	}
	for _, p := range policies {
		p = p.withDefaults()
		mc := jsonMethodConfig{RetryPolicy: &jsonRetryPolicy{
			MaxAttempts:       p.MaxAttempts,
			InitialBackoff:    jsonDuration(p.InitialBackoff),
			MaxBackoff:        jsonDuration(p.MaxBackoff),
			BackoffMultiplier: p.BackoffMultiplier,
		}}
		for _, name := range p.RetryableStatusCodes {
			mc.RetryPolicy.RetryableStatusCodes = append(mc.RetryPolicy.RetryableStatusCodes, strings.ToUpper(name))
		}
		for _, m := range p.Methods {
			service, method, _ := methodName(m)
			mc.Name = append(mc.Name, jsonName{Service: service, Method: method})
		}
		sc.MethodConfig = append(sc.MethodConfig, mc)
	}
	if throttling != nil {
		sc.RetryThrottling = &jsonThrottling{MaxTokens: throttling.MaxTokens, TokenRatio: throttling.TokenRatio}
	}
	if sc.LoadBalancingConfig == nil && sc.MethodConfig == nil && sc.RetryThrottling == nil {
		return "", nil
	}
	b, err := json.Marshal(sc)
	return string(b), err
}
