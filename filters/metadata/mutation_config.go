package metadata

import (
	"errors"
	"fmt"
	"strings"

	"github.com/manifold-grpc/manifold/pipeline"
)

// headersName names the header mutation filter in config files, logs and
// errors.
const headersName = "headers"

func init() {
	pipeline.Register(pipeline.Module{
		Name: headersName,
		New:  func() pipeline.FilterConfig { return new(HeadersConfig) },
	})
}

// HeadersConfig is the config of the header mutation filter ([NewHeaders]):
// three lists of operations, each applied in the order listed.
//
// No list may touch a header that belongs to the connection or to gRPC
// itself: pseudo-headers (":authority"), hop-by-hop keys
// ([pipeline.IsHopByHop]: te, content-type, user-agent, …) and every
// "grpc-" key (grpc-timeout, grpc-status-details-bin, …), which pass through
// the proxy untouched. Only the request side may add, set or rename to an
// x-manifold-* key; any side may remove one. Keys are lowercase letters, digits, '-', '_' and '.';
// values of keys that do not end in "-bin" are printable ASCII.
type HeadersConfig struct {
	// Request edits the request headers sent upstream, before the upstream
	// call opens. It never changes what other filters see as the client's
	// own headers (call.Inbound). x-manifold-* keys may be set here: the
	// router matches on them, and clients cannot send them. They are
	// forwarded upstream too unless a later operation removes them.
	Request []HeaderOp `yaml:"request"`
	// Response edits the response headers sent to the client. When the
	// upstream answered with trailers only (an error, typically), an add or
	// set here makes the proxy send headers before the trailers.
	Response []HeaderOp `yaml:"response"`
	// Trailers edits the response trailers sent to the client, whatever the
	// call's status, including local replies of later filters. It cannot
	// change the status itself.
	Trailers []HeaderOp `yaml:"trailers"`
}

// HeaderOp is one operation: exactly one of its fields is set.
type HeaderOp struct {
	// Add appends a value to the header, keeping the values it has.
	Add *HeaderValue `yaml:"add,omitempty"`
	// Set replaces every value of the header with the new value.
	Set *HeaderValue `yaml:"set,omitempty"`
	// Remove deletes the header.
	Remove *HeaderRemove `yaml:"remove,omitempty"`
	// Rename moves every value of a header to another key, replacing the
	// values that key had. Nothing happens when the header is absent.
	Rename *HeaderRename `yaml:"rename,omitempty"`
}

// HeaderValue names a header and where its value comes from: exactly one of
// Value, Claim, Header, From and Func.
//
// A value that cannot be had (a missing claim or header, an unknown peer)
// is replaced by Default, or, when Default is empty, the operation is
// skipped and the header keeps the values it had. To be sure that a header
// holds nothing a client sent, remove it first:
//
//	request:
//	  - remove: {key: x-tenant}
//	  - set: {key: x-tenant, claim: tenant}
//
// Values that could not be sent in a header (non-ASCII text for a key that
// does not end in "-bin") count as missing.
type HeaderValue struct {
	// Key is the header to write.
	Key string `yaml:"key"`
	// Value is a literal value.
	Value string `yaml:"value,omitempty"`
	// Claim takes the value from a claim of the caller's verified
	// credentials ([pipeline.ClaimsKey]), as set by an authenticating
	// filter earlier in the chain. Strings are copied as they are, numbers
	// and booleans formatted; lists and objects count as missing.
	Claim string `yaml:"claim,omitempty"`
	// Header copies every value of a request header as the client sent it
	// (call.Inbound, not the outbound copy that filters edit), on either
	// side: on the response side it echoes a request header back.
	Header string `yaml:"header,omitempty"`
	// From takes the value from the call: "peer" (the client's IP
	// address, without the port), "authority" (the :authority the client
	// called) or "method" (the full method name, "/pkg.Service/Method").
	From ValueSource `yaml:"from,omitempty"`
	// Default replaces a value that cannot be had. It does not apply to a
	// literal Value.
	Default string `yaml:"default,omitempty"`
	// Func computes the value in Go, for values a config file cannot name
	// (per-call state, say: see [StateString]). Not available in config
	// files.
	Func ValueFunc `yaml:"-"`
}

// HeaderRemove names a header to delete.
type HeaderRemove struct {
	// Key is the header to delete.
	Key string `yaml:"key"`
}

// HeaderRename moves a header's values to another key.
type HeaderRename struct {
	// Key is the header to move.
	Key string `yaml:"key"`
	// To is the key its values move to. A binary key ("-bin") can only
	// move to another binary key.
	To string `yaml:"to"`
}

// ValueSource is a value of the call itself, for [HeaderValue.From].
type ValueSource string

// The values of the call that [HeaderValue.From] can name.
const (
	// FromPeer is the client's IP address, without the port; missing when
	// the peer is not an IP endpoint (a Unix socket, say).
	FromPeer ValueSource = "peer"
	// FromAuthority is the :authority the client called.
	FromAuthority ValueSource = "authority"
	// FromMethod is the full method name, "/pkg.Service/Method".
	FromMethod ValueSource = "method"
)

func (s ValueSource) valid() bool {
	return s == FromPeer || s == FromAuthority || s == FromMethod
}

// Validate reports every problem with c, each prefixed with the path of
// the field, e.g. `request[2].set.key: "grpc-timeout" is reserved`.
func (c *HeadersConfig) Validate() error {
	var errs []error
	errs = validateOps(errs, "request", c.Request, true)
	errs = validateOps(errs, "response", c.Response, false)
	errs = validateOps(errs, "trailers", c.Trailers, false)
	return errors.Join(errs...)
}

// Build makes the filter, named "headers", that logs to env.Logger.
func (c *HeadersConfig) Build(env pipeline.BuildEnv) (pipeline.Filter, error) {
	var opts []HeadersOption
	if env.Logger != nil {
		opts = append(opts, WithLogger(env.Logger))
	}
	return NewHeaders(*c, opts...)
}

func validateOps(errs []error, side string, ops []HeaderOp, request bool) []error {
	for i, op := range ops {
		path := fmt.Sprintf("%s[%d]", side, i)
		var kinds []string
		if op.Add != nil {
			kinds = append(kinds, "add")
			errs = op.Add.validate(errs, path+".add", request)
		}
		if op.Set != nil {
			kinds = append(kinds, "set")
			errs = op.Set.validate(errs, path+".set", request)
		}
		if op.Remove != nil {
			kinds = append(kinds, "remove")
			errs = checkTarget(errs, path+".remove.key", op.Remove.Key, true) // removing an internal key is always safe
		}
		if op.Rename != nil {
			kinds = append(kinds, "rename")
			errs = op.Rename.validate(errs, path+".rename", request)
		}
		switch len(kinds) {
		case 0:
			errs = append(errs, fmt.Errorf("%s: needs one of add, set, remove, rename", path))
		case 1:
		default:
			errs = append(errs, fmt.Errorf("%s: has %s; one operation per entry", path, strings.Join(kinds, " and ")))
		}
	}
	return errs
}

func (v *HeaderValue) validate(errs []error, path string, request bool) []error {
	errs = checkTarget(errs, path+".key", v.Key, request)
	var sources []string
	if v.Value != "" {
		sources = append(sources, "value")
		errs = checkValue(errs, path+".value", v.Key, v.Value)
	}
	if v.Claim != "" {
		sources = append(sources, "claim")
	}
	if v.Header != "" {
		sources = append(sources, "header")
		if err := keySyntax(v.Header); err != nil {
			errs = append(errs, fmt.Errorf("%s.header: %w", path, err))
		}
	}
	if v.From != "" {
		sources = append(sources, "from")
		if !v.From.valid() {
			errs = append(errs, fmt.Errorf("%s.from: %q is not one of %s, %s, %s", path, v.From, FromPeer, FromAuthority, FromMethod))
		}
	}
	if v.Func != nil {
		sources = append(sources, "func")
	}
	switch len(sources) {
	case 0:
		errs = append(errs, fmt.Errorf("%s: needs a value: one of value, claim, header, from", path))
	case 1:
	default:
		errs = append(errs, fmt.Errorf("%s: has %s; choose one", path, strings.Join(sources, " and ")))
	}
	if v.Default != "" {
		if v.Value != "" {
			errs = append(errs, fmt.Errorf("%s.default: a literal value needs no default", path))
		}
		errs = checkValue(errs, path+".default", v.Key, v.Default)
	}
	return errs
}

func (r *HeaderRename) validate(errs []error, path string, request bool) []error {
	errs = checkTarget(errs, path+".key", r.Key, request)
	errs = checkTarget(errs, path+".to", r.To, request)
	switch {
	case r.To == "" || r.Key == "":
	case r.To == r.Key:
		errs = append(errs, fmt.Errorf("%s.to: %q is the key itself", path, r.To))
	case isBinary(r.Key) && !isBinary(r.To):
		errs = append(errs, fmt.Errorf("%s.to: %q is a text header; values of the binary %q cannot move there", path, r.To, r.Key))
	}
	return errs
}

// checkTarget appends why key cannot be written or removed by the filter;
// internalOK allows x-manifold-* keys.
func checkTarget(errs []error, path, key string, internalOK bool) []error {
	var err error
	switch {
	case key == "":
		err = errors.New("must not be empty")
	case key[0] == ':':
		err = fmt.Errorf("%q is a pseudo-header", key)
	case strings.HasPrefix(key, "grpc-"):
		err = fmt.Errorf("%q is reserved", key)
	case pipeline.IsHopByHop(key):
		err = fmt.Errorf("%q is a hop-by-hop header", key)
	default:
		err = keySyntax(key)
		if err == nil && !internalOK && strings.HasPrefix(key, pipeline.InternalPrefix) {
			err = fmt.Errorf("%q is internal to Manifold; only the request side may set it", key)
		}
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	return errs
}

// keySyntax reports a key that grpc-go would refuse to send.
func keySyntax(key string) error {
	switch {
	case key == "":
		return errors.New("must not be empty")
	case key != strings.ToLower(key):
		return fmt.Errorf("%q must be lowercase", key)
	case !pipeline.ValidPair(key, ""):
		return fmt.Errorf("%q may only hold lowercase letters, digits, '-', '_' and '.'", key)
	}
	return nil
}

// checkValue appends a problem with a literal value for key.
func checkValue(errs []error, path, key, value string) []error {
	if key != "" && !pipeline.ValidPair(key, value) && keySyntax(key) == nil {
		errs = append(errs, fmt.Errorf("%s: %q is not printable ASCII, which a key without the -bin suffix needs", path, value))
	}
	return errs
}

func isBinary(key string) bool { return strings.HasSuffix(key, "-bin") }

var _ pipeline.FilterConfig = (*HeadersConfig)(nil)
