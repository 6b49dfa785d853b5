package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCertReloadInterval is how often a [CertReloader] reads its files
// by default.
const DefaultCertReloadInterval = 10 * time.Second

// CertReloader serves a certificate, key and client CAs from PEM files and
// reloads them when the files change, without a restart and without
// dropping connections: a handshake uses the files' content as of the last
// good load.
//
// Every reload interval it reads the files (a few KiB) and, when their
// content changed, parses them. It reads the paths, following symlinks, so
// Kubernetes secret volumes, whose files are symlinks swapped at once to a
// new directory, and files replaced by rename or rewritten in place are all
// seen. New content that does not load (a half-written file, a key that
// does not match the certificate, a CA file without certificates, a
// missing file) is refused: the reloader keeps serving what it had and logs
// the error once per bad content, and retries at every interval, so a
// certificate written after its key is taken once both are there.
//
// Reloading client CAs takes effect for resumed TLS sessions too: crypto/tls
// checks a resumed session's client certificate chain against the current
// CAs and falls back to a full handshake when they no longer verify it.
//
// A CertReloader is safe for concurrent use. [CertReloader.Close] stops
// the polling.
type CertReloader struct {
	certFile, keyFile, caFile string
	opts                      certOptions

	cur atomic.Pointer[certSnapshot]

	mu         sync.Mutex // serializes loads; guards the fields below
	failedHash [sha256.Size]byte
	failedErr  string

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// certSnapshot is one good load of the files.
type certSnapshot struct {
	config *tls.Config // what a handshake uses
	hash   [sha256.Size]byte
}

// CertOption configures [NewCertReloader].
type CertOption func(*certOptions)

type certOptions struct {
	interval   time.Duration
	logger     *slog.Logger
	clientAuth *tls.ClientAuthType
	minVersion uint16
}

// WithReloadInterval sets how often the files are read; 0 or less turns
// polling off, leaving [CertReloader.Reload]. Default
// [DefaultCertReloadInterval].
func WithReloadInterval(d time.Duration) CertOption {
	return func(o *certOptions) { o.interval = d }
}

// WithReloadLogger sets the logger for reloads and failed reloads. Default
// [slog.Default].
func WithReloadLogger(l *slog.Logger) CertOption {
	return func(o *certOptions) { o.logger = l }
}

// WithClientAuth sets the client-certificate policy. Default, with a client
// CA file, [tls.RequireAndVerifyClientCert]; without one,
// [tls.NoClientCert]. [tls.VerifyClientCertIfGiven] lets clients without a
// certificate connect, for listeners where only some routes need one (see
// the client_cert filter). Policies that verify need a client CA file.
func WithClientAuth(a tls.ClientAuthType) CertOption {
	return func(o *certOptions) { o.clientAuth = &a }
}

// WithMinTLSVersion sets the oldest TLS version negotiated:
// [tls.VersionTLS12] (the default) or [tls.VersionTLS13].
func WithMinTLSVersion(v uint16) CertOption {
	return func(o *certOptions) { o.minVersion = v }
}

// NewCertReloader loads certFile and keyFile (PEM certificate chain and
// its private key) and, if clientCAFile is not empty, the client CAs (PEM
// certificates) that verify clients' certificates. It fails if they do not
// load. Unless polling is off, it then reads the files every interval until
// [CertReloader.Close].
func NewCertReloader(certFile, keyFile, clientCAFile string, opts ...CertOption) (*CertReloader, error) {
	o := certOptions{interval: DefaultCertReloadInterval, logger: slog.Default(), minVersion: MinTLSVersion}
	for _, opt := range opts {
		opt(&o)
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("server: certificate reloader needs a certificate file and a key file")
	}
	if o.minVersion != tls.VersionTLS12 && o.minVersion != tls.VersionTLS13 {
		return nil, fmt.Errorf("server: minimum TLS version %s is not allowed: want TLS 1.2 or 1.3", tls.VersionName(o.minVersion))
	}
	if o.clientAuth == nil {
		a := tls.NoClientCert
		if clientCAFile != "" {
			a = tls.RequireAndVerifyClientCert
		}
		o.clientAuth = &a
	}
	if *o.clientAuth >= tls.VerifyClientCertIfGiven && clientCAFile == "" {
		return nil, fmt.Errorf("server: client auth %s needs a client CA file", o.clientAuth)
	}
	if *o.clientAuth > tls.RequireAndVerifyClientCert || *o.clientAuth < tls.NoClientCert {
		return nil, fmt.Errorf("server: unknown client auth policy %d", int(*o.clientAuth))
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, caFile: clientCAFile, opts: o}
	snap, err := r.load()
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	r.cur.Store(snap)
	if o.interval > 0 {
		r.stop, r.done = make(chan struct{}), make(chan struct{})
		go r.poll()
	}
	return r, nil
}

// TLSConfig returns the config to serve with, for [WithTLS]: each
// handshake gets the certificate and client CAs of the last good load.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: r.opts.minVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().config, nil
		},
	}
}

// Certificate returns the certificate served now: the leaf of the last
// good load.
func (r *CertReloader) Certificate() *x509.Certificate {
	return r.cur.Load().config.Certificates[0].Leaf
}

// Reload reads the files now. If their content changed and loads, the next
// handshakes use it; if it does not load, Reload returns the error and the
// reloader keeps what it had.
func (r *CertReloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reload()
}

// Close stops polling. It returns nil; a closed reloader keeps serving its
// last good load.
func (r *CertReloader) Close() error {
	r.closeOnce.Do(func() {
		if r.stop != nil {
			close(r.stop)
			<-r.done
		}
	})
	return nil
}

func (r *CertReloader) poll() {
	defer close(r.done)
	t := time.NewTicker(r.opts.interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			_ = r.Reload() // logged
		}
	}
}

// reload loads the files if their content changed, logging the outcome:
// a failure once per distinct bad content or read error. r.mu is held.
func (r *CertReloader) reload() error {
	files, hash, err := r.read()
	if err == nil && hash == r.cur.Load().hash {
		r.failedErr = ""
		return nil
	}
	var snap *certSnapshot
	if err == nil {
		snap, err = r.parse(files, hash)
	}
	if err != nil {
		if err.Error() != r.failedErr || hash != r.failedHash {
			r.failedErr, r.failedHash = err.Error(), hash
			r.opts.logger.Error("TLS certificate reload failed; keeping the current certificate",
				slog.String("cert_file", r.certFile), slog.Any("error", err))
		}
		return err
	}
	r.failedErr = ""
	r.cur.Store(snap)
	leaf := snap.config.Certificates[0].Leaf
	r.opts.logger.Info("TLS certificate reloaded",
		slog.String("cert_file", r.certFile),
		slog.String("subject", leaf.Subject.String()),
		slog.String("serial", leaf.SerialNumber.String()),
		slog.Time("not_after", leaf.NotAfter))
	return nil
}

// load reads and parses the files.
func (r *CertReloader) load() (*certSnapshot, error) {
	files, hash, err := r.read()
	if err != nil {
		return nil, err
	}
	return r.parse(files, hash)
}

// read returns the files' content (certificate, key, CAs) and its hash.
func (r *CertReloader) read() ([3][]byte, [sha256.Size]byte, error) {
	var files [3][]byte
	h := sha256.New()
	for i, path := range []string{r.certFile, r.keyFile, r.caFile} {
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return files, [sha256.Size]byte{}, err
		}
		files[i] = b
		_ = binary.Write(h, binary.BigEndian, uint64(len(b)))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return files, sum, nil
}

// parse builds the handshake config from the files' content.
func (r *CertReloader) parse(files [3][]byte, hash [sha256.Size]byte) (*certSnapshot, error) {
	cert, err := tls.X509KeyPair(files[0], files[1])
	if err != nil {
		return nil, fmt.Errorf("certificate %s, key %s: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", r.certFile, err)
		}
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   r.opts.minVersion,
		ClientAuth:   *r.opts.clientAuth,
	}
	if r.caFile != "" {
		pool, err := ParseCertPool(files[2])
		if err != nil {
			return nil, fmt.Errorf("client CA file %s: %w", r.caFile, err)
		}
		cfg.ClientCAs = pool
	}
	return &certSnapshot{config: cfg, hash: hash}, nil
}

// ParseCertPool parses a PEM bundle of CA certificates, refusing any other
// PEM block, text outside PEM blocks and a bundle without certificates:
// a CA file that is half written or holds a key by mistake is an error, not
// a smaller pool.
func ParseCertPool(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		pool.AddCert(c)
		n++
	}
	if len(bytes.TrimSpace(b)) > 0 {
		return nil, errors.New("trailing data that is not PEM")
	}
	if n == 0 {
		return nil, errors.New("no certificates")
	}
	return pool, nil
}
