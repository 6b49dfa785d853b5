package config_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/config"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/internal/testpki"
)

// TestListenerCertificateReload: a listener built from config serves TLS
// 1.2 at least, and picks up a rotated certificate without a restart.
func TestListenerCertificateReload(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	f := testpki.NewFiles(t)
	f.Write(t, ca.Server(t, "first"))
	file := "listeners:\n  - address: 127.0.0.1:0\n    tls: {cert_file: " + f.Cert + ", key_file: " + f.Key + ", reload_interval: 20ms}\n" +
		"clusters: [{name: c, target: \"passthrough:///127.0.0.1:1\", optional: true}]\nroutes: [{name: r, route: c}]\n"
	cfg, err := config.Parse("m.yaml", []byte(file), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveProxy(t, cfg)

	served := func(maxVersion uint16) (string, error) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS10, MaxVersion: maxVersion})
		if err != nil {
			return "", err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
	}
	if cn, err := served(tls.VersionTLS13); err != nil || cn != "first" {
		t.Fatalf("first handshake: %q %v", cn, err)
	}
	if _, err := served(tls.VersionTLS11); err == nil {
		t.Errorf("a TLS 1.1 client was served")
	}

	f.Write(t, ca.Server(t, "second"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		cn, err := served(tls.VersionTLS13)
		if err == nil && cn == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated certificate not served: %q %v", cn, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUpstreamCAFileStrict: an upstream CA file must hold certificates
// only: one that also holds a key, or text after the certificates, is a
// build error naming the file, not a smaller pool.
func TestUpstreamCAFileStrict(t *testing.T) {
	ca := testpki.NewCA(t, "upstream-ca")
	leaf := ca.Server(t, "upstream")
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"good", string(testpki.CertPEM(ca.Cert)), ""},
		{"with a key", string(testpki.CertPEM(ca.Cert)) + string(testpki.KeyPEM(t, leaf)), "unexpected PEM block"},
		{"trailing text", string(testpki.CertPEM(ca.Cert)) + "not pem\n", "trailing data"},
		{"empty", "", "no certificates"},
	} {
		file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".pem")
		testpki.WriteFile(t, file, []byte(tc.content))
		cfg, err := config.Parse("m.yaml", []byte("listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: \"passthrough:///127.0.0.1:1\", tls: {ca_file: "+file+"}}]\nroutes: [{name: r, route: c}]\n"), env(nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		p, err := config.BuildRoutes(cfg, config.Options{})
		if err == nil {
			_ = p.Close()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file)):
			t.Errorf("%s: %v, want an error naming %s and containing %q", tc.name, err, file, tc.want)
		}
	}
}

// TestUpstreamTLS: a cluster reaches an upstream over TLS with the roots
// of ca_file, checking the name server_name gives when the certificate
// does not name the address; without server_name, or with other roots,
// the call fails UNAVAILABLE and never reaches the upstream.
func TestUpstreamTLS(t *testing.T) {
	ca := testpki.NewCA(t, "upstream-ca")
	other := testpki.NewCA(t, "other-ca")
	var served atomic.Int32
	svc := &testbackend.Service{Unary: func(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		served.Add(1)
		return &testgrpc.SimpleResponse{}, nil
	}}
	cert := ca.Server(t, "upstream", testpki.DNS("upstream.internal"))
	upstream, _ := testbackend.Start(t, svc, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	dir := t.TempDir()
	caFile, otherFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "other.pem")
	testpki.WriteFile(t, caFile, testpki.CertPEM(ca.Cert))
	testpki.WriteFile(t, otherFile, testpki.CertPEM(other.Cert))

	for _, tc := range []struct {
		name, tls string
		want      codes.Code
	}{
		{"ca_file and server_name", "{ca_file: " + caFile + ", server_name: upstream.internal}", codes.OK},
		{"no server_name: the address is not in the certificate", "{ca_file: " + caFile + "}", codes.Unavailable},
		{"other roots", "{ca_file: " + otherFile + ", server_name: upstream.internal}", codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := served.Load()
			file := "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: \"passthrough:///" + upstream + "\", tls: " + tc.tls + "}]\nroutes: [{name: r, route: c}]\n"
			cfg, err := config.Parse("m.yaml", []byte(file), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			proxyAddr := serveProxy(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = testgrpc.NewTestServiceClient(proxytest.Dial(t, proxyAddr)).UnaryCall(ctx, &testgrpc.SimpleRequest{})
			if status.Code(err) != tc.want {
				t.Fatalf("call: %v, want %v", err, tc.want)
			}
			if n := served.Load() - before; (tc.want == codes.OK) != (n == 1) {
				t.Errorf("upstream served %d calls", n)
			}
		})
	}
}
