package server

import (
	"crypto/tls"
	"fmt"
)

// MinTLSVersion is the oldest TLS version the server negotiates.
const MinTLSVersion = tls.VersionTLS12

// ParseTLSVersion parses a TLS version as config files write it, "1.2" or
// "1.3"; older versions are refused.
func ParseTLSVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	case "1.0", "1.1":
		return 0, fmt.Errorf("TLS version %s is not allowed: the oldest is 1.2", s)
	}
	return 0, fmt.Errorf("TLS version %q: want 1.2 or 1.3", s)
}

// serverTLS returns a copy of cfg that never negotiates below TLS 1.2, or an
// error if cfg asks for an older minimum.
func serverTLS(cfg *tls.Config) (*tls.Config, error) {
	if cfg.MinVersion != 0 && cfg.MinVersion < MinTLSVersion {
		return nil, fmt.Errorf("server: TLS MinVersion %s is not allowed: the oldest is TLS 1.2", tls.VersionName(cfg.MinVersion))
	}
	c := cfg.Clone()
	if c.MinVersion == 0 {
		c.MinVersion = MinTLSVersion
	}
	if get := c.GetConfigForClient; get != nil {
		c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			pc, err := get(hello)
			if err != nil || pc == nil || pc.MinVersion >= MinTLSVersion {
				return pc, err
			}
			pc = pc.Clone()
			pc.MinVersion = MinTLSVersion
			return pc, nil
		}
	}
	return c, nil
}
