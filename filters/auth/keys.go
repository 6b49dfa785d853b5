package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// keyKind is the kind of key an algorithm verifies with.
type keyKind uint8

const (
	rsaKey keyKind = iota + 1
	ecP256Key
	ecP384Key
	ecP521Key
	ed25519Key
	hmacKey
)

// minRSABits is the smallest RSA key accepted, from files or a JWKS.
const minRSABits = 2048

// Reasons a key lookup fails; see [reason].
var (
	// errKeysUnavailable: a JWKS URL has not given any key yet.
	errKeysUnavailable = errors.New("no keys loaded")
	// errUnknownKey: no key fits the token's kid and algorithm.
	errUnknownKey = errors.New("no key for the token")
	// errWeakKey: the key the token names is too weak to trust.
	errWeakKey = errors.New("key too weak")
)

// fits reports whether key can verify tokens of an algorithm that needs
// kind. It refuses RSA keys shorter than minRSABits.
func fits(kind keyKind, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return kind == rsaKey && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		switch kind {
		case ecP256Key:
			return k.Curve == elliptic.P256()
		case ecP384Key:
			return k.Curve == elliptic.P384()
		case ecP521Key:
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return kind == ed25519Key && len(k) == ed25519.PublicKeySize
	case []byte:
		return kind == hmacKey && len(k) >= MinHMACSecretSize
	}
	return false
}

// keySource finds the keys that may verify a token.
type keySource interface {
	// keyfunc returns the jwt key function for one call. The token's
	// algorithm has been checked against the provider's before it runs.
	keyfunc(ctx context.Context) jwt.Keyfunc
	// generation changes whenever the keys do, so that a token verified
	// with keys of an older generation is not trusted any more (see
	// [verifiedToken]). Keys that never change keep generation 0.
	generation() uint64
}

// staticKeys are keys read once from files: PEM keys or an HMAC secret.
// Tokens' kid is ignored.
type staticKeys struct {
	byAlg map[string][]jwt.VerificationKey
}

// newStaticKeys sorts keys by the algorithms that accept them. Every
// algorithm must have a key.
func newStaticKeys(path string, algs []string, keys []any) (*staticKeys, error) {
	s := &staticKeys{byAlg: make(map[string][]jwt.VerificationKey, len(algs))}
	for _, alg := range algs {
		for _, k := range keys {
			if fits(algKeys[alg], k) {
				s.byAlg[alg] = append(s.byAlg[alg], k)
			}
		}
		if len(s.byAlg[alg]) == 0 {
			return nil, fmt.Errorf("%s.algorithms: no key fits %s", path, alg)
		}
	}
	return s, nil
}

func (s *staticKeys) keyfunc(context.Context) jwt.Keyfunc { return s.lookup }

// generation is 0: the keys are read once, at start.
func (s *staticKeys) generation() uint64 { return 0 }

func (s *staticKeys) lookup(t *jwt.Token) (any, error) {
	keys := s.byAlg[t.Method.Alg()]
	switch len(keys) {
	case 0:
		return nil, errUnknownKey
	case 1:
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// readPEMFiles reads the public keys of every file.
func readPEMFiles(path string, files []string) ([]any, error) {
	var keys []any
	for i, f := range files {
		k, err := readPEM(f)
		if err != nil {
			return nil, fmt.Errorf("%s.pem_files[%d]: %w", path, i, err)
		}
		keys = append(keys, k...)
	}
	return keys, nil
}

// readPEM reads the public keys and certificates of one PEM file.
func readPEM(file string) ([]any, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var keys []any
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var key any
		switch {
		case b.Type == "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(b.Bytes)
		case b.Type == "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case b.Type == "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
				key = cert.PublicKey
			}
		case strings.Contains(b.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("%s: block %d is a private key; give the public key only", file, n)
		default:
			return nil, fmt.Errorf("%s: block %d: unsupported PEM type %q", file, n, b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: block %d: %w", file, n, err)
		}
		if err := checkPublicKey(key); err != nil {
			return nil, fmt.Errorf("%s: block %d: %w", file, n, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no PEM public key or certificate", file)
	}
	return keys, nil
}

// checkPublicKey accepts the keys some algorithm can use.
func checkPublicKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits {
			return fmt.Errorf("RSA key of %d bits; at least %d are required", n, minRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("unsupported key type %T", key)
}

// readHMACSecret reads a secret file, without one trailing newline, and
// refuses short secrets and files that hold a PEM key (a likely mix-up that
// would make the public key a shared secret).
func readHMACSecret(path, file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s.hmac_secret_file: %w", path, err)
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	if bytes.Contains(data, []byte("-----BEGIN ")) {
		return nil, fmt.Errorf("%s.hmac_secret_file: %s holds a PEM block, not a secret", path, file)
	}
	if len(data) < MinHMACSecretSize {
		return nil, fmt.Errorf("%s.hmac_secret_file: %s holds %d bytes; at least %d are required", path, file, len(data), MinHMACSecretSize)
	}
	return data, nil
}
