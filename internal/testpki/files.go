package testpki

import (
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// Files are the paths of a TLS listener's or client's PEM files.
type Files struct {
	// Cert is the certificate file, Key its private key file.
	Cert, Key string
	// CA is the file of trusted CA certificates.
	CA string
}

// NewFiles returns the paths tls.crt, tls.key and ca.crt in a new
// t.TempDir(). It creates no file.
func NewFiles(t testing.TB) Files {
	t.Helper()
	dir := t.TempDir()
	return Files{
		Cert: filepath.Join(dir, "tls.crt"),
		Key:  filepath.Join(dir, "tls.key"),
		CA:   filepath.Join(dir, "ca.crt"),
	}
}

// Write replaces f.Key and then f.Cert with c's private key and
// certificate, each atomically ([WriteFile]). Key first: a reader that
// sees the new key with the old certificate finds a mismatched pair and
// keeps what it had.
func (f Files) Write(t testing.TB, c tls.Certificate) {
	t.Helper()
	WriteFile(t, f.Key, KeyPEM(t, c))
	var chain []byte
	for _, der := range c.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	WriteFile(t, f.Cert, chain)
}

// WriteCA replaces f.CA with the certificates of cas, atomically.
func (f Files) WriteCA(t testing.TB, cas ...*CA) {
	t.Helper()
	var b []byte
	for _, ca := range cas {
		b = append(b, CertPEM(ca.Cert)...)
	}
	WriteFile(t, f.CA, b)
}

// WriteFile replaces path with b atomically, as tools that rename a
// finished temporary file over it do: a reader sees the old content or
// the new, never a part.
func WriteFile(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
