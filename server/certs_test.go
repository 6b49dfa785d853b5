package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/internal/testpki"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// nopHandler ends every call with OK.
var nopHandler = pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error { return nil })

// handshake connects to addr over TLS with cfg (offering h2, as gRPC
// clients do) and reads the server's first bytes: under TLS 1.3 the
// server's verdict on a client certificate arrives after the client's side
// of the handshake ended.
func handshake(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	tc := c.(*tls.Conn)
	_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = tc.Read(make([]byte, 1))
	return tc.ConnectionState(), err
}

// servedSerial is the serial number of the certificate a handshake sees.
func servedSerial(t *testing.T, addr string, roots *x509.CertPool) string {
	t.Helper()
	cs, err := handshake(t, addr, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return cs.PeerCertificates[0].SerialNumber.String()
}

// count returns how many times s was logged.
func (b *syncBuffer) count(s string) int { return strings.Count(b.String(), s) }

func (b *syncBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// newReloader starts a reloader closed when the test ends.
func newReloader(t *testing.T, f testpki.Files, ca string, opts ...server.CertOption) *server.CertReloader {
	t.Helper()
	r, err := server.NewCertReloader(f.Cert, f.Key, ca, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// TestCertReloaderReload checks that after the files are replaced, Reload
// makes the next handshake see the new certificate, that an unchanged
// file is not reloaded, and that connections made before keep working.
func TestCertReloaderReload(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "ca")
	certA, certB := ca.Server(t, "a"), ca.Server(t, "b")
	f := testpki.NewFiles(t)
	f.Write(t, certA)
	var logs syncBuffer
	r := newReloader(t, f, "", server.WithReloadInterval(0), server.WithReloadLogger(logs.logger()))
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{ServerOptions: []server.Option{server.WithTLS(r.TLSConfig())}})
	ctx := testContext(t)

	client := tlsClient(t, env.ProxyAddr, &tls.Config{RootCAs: ca.Pool()})
	if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("call with certificate A: %v", err)
	}
	if got, want := servedSerial(t, env.ProxyAddr, ca.Pool()), certA.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("served serial %s, want A's %s", got, want)
	}
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload of unchanged files: %v", err)
	}
	if n := logs.count("TLS certificate reloaded"); n != 0 {
		t.Errorf("unchanged files logged %d reloads, want 0", n)
	}

	f.Write(t, certB)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got, want := servedSerial(t, env.ProxyAddr, ca.Pool()), certB.Leaf.SerialNumber.String(); got != want {
		t.Errorf("after reload: served serial %s, want B's %s", got, want)
	}
	if got := r.Certificate().SerialNumber; got.Cmp(certB.Leaf.SerialNumber) != 0 {
		t.Errorf("Certificate() serial %s, want B's", got)
	}
	if n := logs.count("TLS certificate reloaded"); n != 1 {
		t.Errorf("logged %d reloads, want 1", n)
	}
	// The connection made with A is still up.
	if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Errorf("call on the connection made before the reload: %v", err)
	}
}

// TestCertReloaderPolls checks that the reloader notices new files by
// itself, and that gRPC clients then get the new certificate.
func TestCertReloaderPolls(t *testing.T) {
	t.Parallel()
	caA, caB := testpki.NewCA(t, "ca A"), testpki.NewCA(t, "ca B")
	f := testpki.NewFiles(t)
	f.Write(t, caA.Server(t, "a"))
	r := newReloader(t, f, "", server.WithReloadInterval(10*time.Millisecond))
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{ServerOptions: []server.Option{server.WithTLS(r.TLSConfig())}})
	ctx := testContext(t)

	certB := caB.Server(t, "b")
	f.Write(t, certB)
	for {
		cs, err := handshake(t, env.ProxyAddr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		if cs.PeerCertificates[0].Equal(certB.Leaf) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the reloader never served the new certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := tlsClient(t, env.ProxyAddr, &tls.Config{RootCAs: caB.Pool()}).UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Errorf("call from a client trusting only the new CA: %v", err)
	}
}

// TestCertReloaderSymlinkSwap reloads files laid out as Kubernetes mounts
// a secret: the paths are symlinks through "..data", which is swapped at
// once to a new directory.
func TestCertReloaderSymlinkSwap(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "ca")
	dir := t.TempDir()
	version := func(name string, c tls.Certificate) {
		t.Helper()
		vdir := filepath.Join(dir, name)
		if err := os.Mkdir(vdir, 0o700); err != nil {
			t.Fatal(err)
		}
		testpki.Files{Cert: filepath.Join(vdir, "tls.crt"), Key: filepath.Join(vdir, "tls.key")}.Write(t, c)
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	certA, certB := ca.Server(t, "a"), ca.Server(t, "b")
	version("..v1", certA)
	f := testpki.Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key")}
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	r := newReloader(t, f, "", server.WithReloadInterval(0))
	addr := proxytest.Serve(t, nopHandler, server.WithTLS(r.TLSConfig()))
	if got := servedSerial(t, addr, ca.Pool()); got != certA.Leaf.SerialNumber.String() {
		t.Fatalf("served serial %s, want A's", got)
	}
	version("..v2", certB)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, addr, ca.Pool()); got != certB.Leaf.SerialNumber.String() {
		t.Errorf("after the swap: served serial %s, want B's", got)
	}
}

// TestCertReloaderKeepsOldOnBadFiles checks that new files that do not
// load leave the old certificate in service, are logged once, and that
// good files afterwards are taken.
func TestCertReloaderKeepsOldOnBadFiles(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "ca")
	other := testpki.NewCA(t, "other")
	tests := []struct {
		name    string
		change  func(t *testing.T, f testpki.Files, next tls.Certificate)
		wantErr string
	}{
		{"half-written certificate", func(t *testing.T, f testpki.Files, next tls.Certificate) {
			b := testpki.CertPEM(next.Leaf)
			testpki.WriteFile(t, f.Cert, b[:len(b)/2])
			testpki.WriteFile(t, f.Key, testpki.KeyPEM(t, next))
		}, "failed to find any PEM data"},
		{"key of another certificate", func(t *testing.T, f testpki.Files, next tls.Certificate) {
			testpki.WriteFile(t, f.Cert, testpki.CertPEM(next.Leaf))
		}, "private key does not match public key"},
		{"empty key file", func(t *testing.T, f testpki.Files, next tls.Certificate) {
			testpki.WriteFile(t, f.Cert, testpki.CertPEM(next.Leaf))
			testpki.WriteFile(t, f.Key, nil)
		}, "failed to find any PEM data"},
		{"missing key file", func(t *testing.T, f testpki.Files, next tls.Certificate) {
			if err := os.Remove(f.Key); err != nil {
				t.Fatal(err)
			}
		}, "no such file"},
		{"client CA file with a key", func(t *testing.T, f testpki.Files, next tls.Certificate) {
			testpki.WriteFile(t, f.CA, testpki.KeyPEM(t, next))
		}, `unexpected PEM block "PRIVATE KEY"`},
		{"empty client CA file", func(t *testing.T, f testpki.Files, next tls.Certificate) {
			testpki.WriteFile(t, f.CA, nil)
		}, "no certificates"},
		{"client CA file with garbage", func(t *testing.T, f testpki.Files, next tls.Certificate) {
			testpki.WriteFile(t, f.CA, append(testpki.CertPEM(other.Cert), "garbage"...))
		}, "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			certA, certB := ca.Server(t, "a"), ca.Server(t, "b")
			client := ca.Client(t, "client")
			f := testpki.NewFiles(t)
			f.Write(t, certA)
			f.WriteCA(t, ca)
			var logs syncBuffer
			r := newReloader(t, f, f.CA, server.WithReloadInterval(0), server.WithReloadLogger(logs.logger()))
			addr := proxytest.Serve(t, nopHandler, server.WithTLS(r.TLSConfig()))
			clientCfg := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}}

			tt.change(t, f, certB)
			for range 2 {
				if err := r.Reload(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Reload() = %v, want an error containing %q", err, tt.wantErr)
				}
			}
			cs, err := handshake(t, addr, clientCfg)
			if err != nil {
				t.Fatalf("handshake after a bad reload: %v", err)
			}
			if !cs.PeerCertificates[0].Equal(certA.Leaf) {
				t.Error("a bad reload replaced the certificate")
			}
			if n := logs.count("TLS certificate reload failed"); n != 1 {
				t.Errorf("logged %d failures, want 1:\n%s", n, logs.String())
			}

			f.Write(t, certB)
			f.WriteCA(t, ca)
			if err := r.Reload(); err != nil {
				t.Fatalf("Reload of good files: %v", err)
			}
			if cs, err := handshake(t, addr, clientCfg); err != nil || !cs.PeerCertificates[0].Equal(certB.Leaf) {
				t.Errorf("after good files: handshake err %v, want certificate B", err)
			}
		})
	}
}

// TestCertReloaderClientCAs checks that a new client CA file changes which
// client certificates the server accepts, for new and for resumed
// sessions.
func TestCertReloaderClientCAs(t *testing.T) {
	t.Parallel()
	serverCA, ca1, ca2 := testpki.NewCA(t, "server ca"), testpki.NewCA(t, "client ca 1"), testpki.NewCA(t, "client ca 2")
	f := testpki.NewFiles(t)
	f.Write(t, serverCA.Server(t, "proxy"))
	f.WriteCA(t, ca1)
	r := newReloader(t, f, f.CA, server.WithReloadInterval(0))
	addr := proxytest.Serve(t, nopHandler, server.WithTLS(r.TLSConfig()))

	cache := tls.NewLRUClientSessionCache(4)
	client1 := &tls.Config{RootCAs: serverCA.Pool(), Certificates: []tls.Certificate{ca1.Client(t, "one")}, ClientSessionCache: cache}
	client2 := &tls.Config{RootCAs: serverCA.Pool(), Certificates: []tls.Certificate{ca2.Client(t, "two")}}

	if _, err := handshake(t, addr, client1); err != nil {
		t.Fatalf("client of CA 1: %v", err)
	}
	cs, err := handshake(t, addr, client1)
	if err != nil || !cs.DidResume {
		t.Fatalf("second connection of client 1: err %v, resumed %v; want a resumed session", err, cs.DidResume)
	}
	if _, err := handshake(t, addr, client2); err == nil {
		t.Fatal("client of CA 2 accepted before the reload")
	}

	f.WriteCA(t, ca2)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, addr, client2); err != nil {
		t.Errorf("client of CA 2 after the reload: %v", err)
	}
	// client1 still holds a session ticket from before the reload.
	if _, err := handshake(t, addr, client1); err == nil {
		t.Error("client of CA 1 accepted after the reload (resuming its session)")
	}
	client1.ClientSessionCache = nil
	if _, err := handshake(t, addr, client1); err == nil {
		t.Error("client of CA 1 accepted after the reload")
	}
}

// TestNewCertReloaderErrors checks what NewCertReloader refuses.
func TestNewCertReloaderErrors(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "ca")
	f := testpki.NewFiles(t)
	f.Write(t, ca.Server(t, "a"))
	f.WriteCA(t, ca)
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name           string
		cert, key, ca  string
		opts           []server.CertOption
		wantErr        string
		wantClientAuth tls.ClientAuthType
		wantMinVersion uint16
	}{
		{"no certificate file", "", f.Key, "", nil, "needs a certificate file and a key file", 0, 0},
		{"no key file", f.Cert, "", "", nil, "needs a certificate file and a key file", 0, 0},
		{"missing certificate file", missing, f.Key, "", nil, "no such file", 0, 0},
		{"certificate as key", f.Cert, f.Cert, "", nil, "certificate", 0, 0},
		{"key as client CA", f.Cert, f.Key, f.Key, nil, "unexpected PEM block", 0, 0},
		{"TLS 1.1", f.Cert, f.Key, "", []server.CertOption{server.WithMinTLSVersion(tls.VersionTLS11)}, "TLS 1.1 is not allowed", 0, 0},
		{"verification without CAs", f.Cert, f.Key, "", []server.CertOption{server.WithClientAuth(tls.VerifyClientCertIfGiven)}, "needs a client CA file", 0, 0},
		{"server only", f.Cert, f.Key, "", nil, "", tls.NoClientCert, tls.VersionTLS12},
		{"mutual TLS", f.Cert, f.Key, f.CA, nil, "", tls.RequireAndVerifyClientCert, tls.VersionTLS12},
		{"optional client certificates, TLS 1.3", f.Cert, f.Key, f.CA, []server.CertOption{
			server.WithClientAuth(tls.VerifyClientCertIfGiven), server.WithMinTLSVersion(tls.VersionTLS13),
		}, "", tls.VerifyClientCertIfGiven, tls.VersionTLS13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := server.NewCertReloader(tt.cert, tt.key, tt.ca, append(tt.opts, server.WithReloadInterval(0))...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewCertReloader() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			cfg := r.TLSConfig()
			if cfg.MinVersion != tt.wantMinVersion {
				t.Errorf("MinVersion = %x, want %x", cfg.MinVersion, tt.wantMinVersion)
			}
			pc, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
			if err != nil {
				t.Fatal(err)
			}
			if pc.ClientAuth != tt.wantClientAuth || pc.MinVersion != tt.wantMinVersion {
				t.Errorf("handshake config: ClientAuth %v MinVersion %x, want %v %x", pc.ClientAuth, pc.MinVersion, tt.wantClientAuth, tt.wantMinVersion)
			}
		})
	}
}

// TestCertReloaderClose checks that Close stops polling (goleak checks the
// goroutine is gone), may be called twice, and that the last certificate
// is still served.
func TestCertReloaderClose(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "ca")
	f := testpki.NewFiles(t)
	f.Write(t, ca.Server(t, "a"))
	r, err := server.NewCertReloader(f.Cert, f.Key, "", server.WithReloadInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	addr := proxytest.Serve(t, nopHandler, server.WithTLS(r.TLSConfig()))
	if err := errors.Join(r.Close(), r.Close()); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, addr, &tls.Config{RootCAs: ca.Pool()}); err != nil {
		t.Errorf("handshake after Close: %v", err)
	}
}
