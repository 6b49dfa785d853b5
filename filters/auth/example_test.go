package auth_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/auth"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Build the filter from a config with an HMAC secret file, then send it
// calls with and without good tokens, as the proxy would.
func Example() {
	dir, err := os.MkdirTemp("", "auth-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	secret := []byte("an-example-secret-of-at-least-32-bytes")
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		fmt.Println(err)
		return
	}

	cfg := auth.Config{
		Providers: []auth.Provider{{
			Name:           "ci",
			Issuer:         "ci.example.com",
			Audiences:      []string{"orders"},
			Algorithms:     []string{"HS256"},
			HMACSecretFile: secretFile,
		}},
		Rules: []auth.Rule{
			{Methods: []string{"/grpc.health.v1.Health/*"}, Action: auth.Public},
			{Methods: []string{"/orders.v1.Orders/Delete"}, Claims: map[string]string{"scope": "orders.admin"}},
		},
		ForwardClaims: map[string]string{"sub": "x-jwt-sub"},
	}
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	f, err := auth.New(cfg, auth.WithClock(func() time.Time { return now }))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()

	token := func(scope string, exp time.Time) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": "ci.example.com", "aud": "orders", "sub": "deploy-bot",
			"scope": scope, "exp": exp.Unix(),
		}).SignedString(secret)
		return "Bearer " + s
	}
	call := func(method, authorization string) {
		md := metadata.Pairs("x-jwt-sub", "admin") // forged: always removed
		if authorization != "" {
			md.Set("authorization", authorization)
		}
		c := &pipeline.Call{Method: method, Inbound: md, Header: pipeline.OutboundHeader(md)}
		err := f.OnRequestHeaders(context.Background(), c)
		st := status.Convert(err)
		fmt.Printf("%s: %v %q, upstream x-jwt-sub=%q\n", method, st.Code(), st.Message(), c.Header["x-jwt-sub"])
	}

	call("/grpc.health.v1.Health/Check", "")
	call("/orders.v1.Orders/Get", "")
	call("/orders.v1.Orders/Get", token("orders.read", now.Add(time.Hour)))
	call("/orders.v1.Orders/Get", token("orders.read", now.Add(-time.Hour)))
	call("/orders.v1.Orders/Delete", token("orders.read", now.Add(time.Hour)))
	call("/orders.v1.Orders/Delete", token("orders.read orders.admin", now.Add(time.Hour)))
	// Output:
	// /grpc.health.v1.Health/Check: OK "", upstream x-jwt-sub=[]
	// /orders.v1.Orders/Get: Unauthenticated "auth: token missing", upstream x-jwt-sub=[]
	// /orders.v1.Orders/Get: OK "", upstream x-jwt-sub=["deploy-bot"]
	// /orders.v1.Orders/Get: Unauthenticated "auth: token expired", upstream x-jwt-sub=[]
	// /orders.v1.Orders/Delete: PermissionDenied "auth: claim \"scope\" lacks a required value", upstream x-jwt-sub=[]
	// /orders.v1.Orders/Delete: OK "", upstream x-jwt-sub=["deploy-bot"]
}
