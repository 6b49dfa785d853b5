package config_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/manifold-grpc/manifold/config"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given
// common name, and its key, over certFile and keyFile.
func writeCert(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Key first, then certificate: a reload that sees the new key with the
	// old certificate refuses the pair and keeps serving the old one.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestListenerCertificateReload: a listener built from config serves TLS
// 1.2 at least, and picks up a rotated certificate without a restart.
func TestListenerCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, "first", certFile, keyFile)
	file := "listeners:\n  - address: 127.0.0.1:0\n    tls: {cert_file: " + certFile + ", key_file: " + keyFile + ", reload_interval: 20ms}\n" +
		"clusters: [{name: c, target: \"passthrough:///127.0.0.1:1\", optional: true}]\nroutes: [{name: r, route: c}]\n"
	cfg, err := config.Parse("m.yaml", []byte(file), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	p, err := config.Build(cfg, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Servers[0].Serve(lis) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Servers[0].Shutdown(ctx)
		_ = p.Close()
	}()

	served := func(maxVersion uint16) (string, error) {
		conn, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS10, MaxVersion: maxVersion})
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

	writeCert(t, "second", certFile, keyFile)
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
