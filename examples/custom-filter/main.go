// Command custom-filter runs Manifold with a filter of the user's own next to
// the built-ins, all named in one YAML config file: an echo backend, a proxy
// whose chain is
//
//	logging ─► auth ─► example.tenant ─► headers ─► route to the backend
//
// and a client that calls it three times: without a token (auth refuses
// it), with a token of an allowed tenant (the backend answers), and with a
// token of another tenant (the user's filter refuses it; the backend never
// sees the call).
//
// The user's filter is the tenant check below: a [pipeline.FilterConfig]
// registered in init under "example.tenant", exactly as the built-ins
// register theirs, and a filter that reads the claims the auth filter
// verified.
//
//	go run ./examples/custom-filter
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/config"
	_ "github.com/manifold-grpc/manifold/filters/auth"     // registers "auth"
	_ "github.com/manifold-grpc/manifold/filters/logging"  // registers "logging"
	_ "github.com/manifold-grpc/manifold/filters/metadata" // registers "headers"
	"github.com/manifold-grpc/manifold/internal/echopb"
	"github.com/manifold-grpc/manifold/pipeline"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "custom-filter:", err)
		os.Exit(1)
	}
}

// configFile is the proxy's config. The user's filter, example.tenant, sits
// between the built-ins; ${BACKEND} and ${SECRET_FILE} come from the
// environment that run passes to config.Parse.
const configFile = `listeners:
  - address: 127.0.0.1:0
clusters:
  - name: echo
    target: passthrough:///${BACKEND}
filters:                      # the global chain, outermost first
  - logging:
      headers: [x-tenant]
  - auth:
      providers:
        - name: example
          issuer: auth.example.com
          algorithms: [HS256]
          hmac_secret_file: ${SECRET_FILE}
      forward_claims: {tenant: x-tenant}
  - example.tenant:           # the user's own filter, registered in Go
      allow: [acme, initech]
  - headers:
      response:
        - add: {key: x-served-via, value: manifold}
routes:
  - name: echo
    match: {service: manifold.examples.echo.v1.Echo}
    route: echo
`

// The user's filter: its config, registered by name, and the filter.

func init() {
	pipeline.Register(pipeline.Module{
		Name: "example.tenant",
		New:  func() pipeline.FilterConfig { return new(TenantConfig) },
	})
}

// TenantConfig is the config of the tenant check, as a config file
// describes it; its field comments are its documentation.
//
//	filters:
//	  - example.tenant:
//	      claim: tenant
//	      allow: [acme, initech]
type TenantConfig struct {
	// Claim is the verified claim that names the caller's tenant. Default
	// "tenant".
	Claim string `yaml:"claim"`
	// Allow lists the tenants that may call. At least one is required.
	Allow []string `yaml:"allow"`
}

// Validate reports every problem with c, naming the fields by their yaml
// names, so that a bad config fails when it is loaded, never per call.
func (c *TenantConfig) Validate() error {
	var errs []error
	if len(c.Allow) == 0 {
		errs = append(errs, errors.New("allow: at least one tenant is required"))
	}
	seen := map[string]bool{}
	for i, t := range c.Allow {
		switch {
		case t == "":
			errs = append(errs, fmt.Errorf("allow[%d]: empty tenant", i))
		case seen[t]:
			errs = append(errs, fmt.Errorf("allow[%d]: %q is listed twice", i, t))
		}
		seen[t] = true
	}
	return errors.Join(errs...)
}

// Build makes the filter. It runs once, when the chain is built.
func (c *TenantConfig) Build(pipeline.BuildEnv) (pipeline.Filter, error) {
	f := &tenantCheck{claim: c.Claim, allowed: make(map[string]bool, len(c.Allow))}
	if f.claim == "" {
		f.claim = "tenant"
	}
	for _, t := range c.Allow {
		f.allowed[t] = true
	}
	return f, nil
}

// tenantCheck lets a call on only when the caller's verified tenant is
// allowed; otherwise it answers PERMISSION_DENIED itself, and neither the
// filters after it nor the upstream see the call. It must come after the
// auth filter, which verifies the token and stores its claims. Its fields
// are read-only after Build, so it is safe for concurrent calls.
type tenantCheck struct {
	claim   string
	allowed map[string]bool
}

func (f *tenantCheck) Name() string { return "tenant" }

func (f *tenantCheck) OnRequestHeaders(_ context.Context, call *pipeline.Call) error {
	claims, ok := pipeline.ClaimsKey.Get(call)
	if !ok {
		// No authenticating filter ran, or a rule let the call through
		// without a token: there is no tenant to check.
		return status.Error(codes.Unauthenticated, "tenant: caller not authenticated")
	}
	tenant, ok := claims.String(f.claim)
	if !ok {
		return status.Errorf(codes.PermissionDenied, "tenant: token has no %q claim", f.claim)
	}
	if !f.allowed[tenant] {
		return status.Errorf(codes.PermissionDenied, "tenant: %s may not call %s", tenant, call.Method)
	}
	return nil
}

var (
	_ pipeline.FilterConfig       = (*TenantConfig)(nil)
	_ pipeline.RequestHeadersHook = (*tenantCheck)(nil)
)

// The program.

func run(out io.Writer) error {
	// The client and the proxy's logger both print; one lock keeps their
	// lines whole.
	out = &syncWriter{w: out}

	// The shared HMAC secret, in a file that the auth filter reads, and
	// with which the example mints its tokens.
	dir, err := os.MkdirTemp("", "manifold-custom-filter")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	secret := []byte(hex.EncodeToString(raw))
	secretFile := filepath.Join(dir, "hmac-secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		return err
	}

	// The backend: an echo service on a loopback port that counts its calls.
	backendLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	svc := &echoService{}
	backend := grpc.NewServer()
	echopb.RegisterEchoServer(backend, svc)
	go func() { _ = backend.Serve(backendLis) }()
	defer backend.Stop()

	fmt.Fprintf(out, "config file:\n%s\n", indent(configFile, "  | "))

	// The proxy, from the config file. The server's logger, which the
	// logging filter writes its access log to, prints records without the
	// attributes that change from run to run (time, durations, ports).
	env := map[string]string{"BACKEND": backendLis.Addr().String(), "SECRET_FILE": secretFile}
	cfg, err := config.Parse("custom-filter.yaml", []byte(configFile), lookup(env))
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(&prefixWriter{w: out, prefix: "   log:    "}, &slog.HandlerOptions{ReplaceAttr: stableAttrs}))
	proxy, err := config.Build(cfg, config.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer proxy.Close() // after the server has shut down: defers run in reverse
	proxyLis, err := net.Listen("tcp", proxy.Listeners[0].Address)
	if err != nil {
		return err
	}
	srv := proxy.Servers[0]
	go func() { _ = srv.Serve(proxyLis) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	fmt.Fprintf(out, "backend on %s, manifold on %s\n\n", backendLis.Addr(), proxyLis.Addr())

	// The client talks to the proxy as if it were the backend.
	conn, err := grpc.NewClient("passthrough:///"+proxyLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := echopb.NewEchoClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	say := func(step, token string) (*echopb.SayResponse, metadata.MD, error) {
		fmt.Fprintf(out, "%s\n", step)
		callCtx := ctx
		if token != "" {
			callCtx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		var header metadata.MD
		resp, err := client.Say(callCtx, &echopb.SayRequest{Text: "hello"}, grpc.Header(&header))
		return resp, header, err
	}
	// refused prints a call's error status, or fails when the call
	// succeeded or ended with another code.
	refused := func(err error, want codes.Code) error {
		st := status.Convert(err)
		if err == nil || st.Code() != want {
			return fmt.Errorf("got %v, want %s", err, want)
		}
		fmt.Fprintf(out, "   client: %s: %s (backend calls so far: %d)\n\n", st.Code(), st.Message(), svc.calls.Load())
		return nil
	}

	// 1. No token: the auth filter answers.
	_, _, err = say("1. no token:", "")
	if err := refused(err, codes.Unauthenticated); err != nil {
		return fmt.Errorf("step 1: %w", err)
	}

	// 2. A tenant on the allow list: the call reaches the backend, and the
	// headers filter adds its response header.
	tok, err := mint(secret, "alice", "acme")
	if err != nil {
		return err
	}
	resp, header, err := say("2. tenant acme:", tok)
	if err != nil {
		return fmt.Errorf("step 2: %w", err)
	}
	fmt.Fprintf(out, "   client: got %q from %s, x-served-via: %s (backend calls so far: %d)\n\n",
		resp.GetText(), resp.GetServedBy(), strings.Join(header.Get("x-served-via"), ","), svc.calls.Load())

	// 3. A valid token of a tenant not on the list: the user's filter
	// answers, and the backend is not called.
	tok, err = mint(secret, "bob", "globex")
	if err != nil {
		return err
	}
	before := svc.calls.Load()
	_, _, err = say("3. tenant globex:", tok)
	if err := refused(err, codes.PermissionDenied); err != nil {
		return fmt.Errorf("step 3: %w", err)
	}
	if n := svc.calls.Load(); n != before {
		return fmt.Errorf("step 3: the backend was called (%d calls, want %d)", n, before)
	}

	// 4. The user's config is validated at load, like a built-in's: errors
	// name the file, line and field.
	bad := strings.Replace(configFile, "allow: [acme, initech]", "allow: []", 1)
	_, err = config.Parse("custom-filter.yaml", []byte(bad), lookup(env))
	if err == nil {
		return errors.New("step 4: a config with an empty allow list loaded")
	}
	fmt.Fprintf(out, "4. the same file with \"allow: []\" fails to load:\n   %v\n", err)
	return nil
}

// mint returns a token that the auth filter accepts: HS256, from the
// provider's issuer, valid for five minutes.
func mint(secret []byte, subject, tenant string) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss":    "auth.example.com",
		"sub":    subject,
		"tenant": tenant,
		"exp":    time.Now().Add(5 * time.Minute).Unix(),
	}).SignedString(secret)
}

// echoService is the backend. It counts its calls and reports the tenant
// header that the auth filter forwarded.
type echoService struct {
	echopb.UnimplementedEchoServer
	calls atomic.Int64
}

func (s *echoService) Say(ctx context.Context, req *echopb.SayRequest) (*echopb.SayResponse, error) {
	s.calls.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	return &echopb.SayResponse{Text: req.GetText(), ServedBy: "backend (tenant " + strings.Join(md.Get("x-tenant"), ",") + ")"}, nil
}

// stableAttrs drops the log attributes that differ from run to run.
func stableAttrs(_ []string, a slog.Attr) slog.Attr {
	switch a.Key {
	case slog.TimeKey, "grpc.time_ms", "time_ms", "peer.address", "grpc.authority", "grpc.user_agent":
		return slog.Attr{}
	}
	return a
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// prefixWriter writes each log record to w after prefix, in one Write
// (slog handlers write one record per Write).
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if _, err := p.w.Write(append([]byte(p.prefix), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func indent(s, prefix string) string {
	var b bytes.Buffer
	for _, line := range strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n") {
		b.WriteString(prefix + line)
	}
	return b.String() + "\n"
}
