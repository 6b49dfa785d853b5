package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/manifold-grpc/manifold/pipeline"
)

// RetryAfterKey is the trailer of a refused call that holds the seconds,
// rounded up, until the caller's bucket has a token again.
const RetryAfterKey = "retry-after"

// Filter limits the rate of calls with token buckets. It only looks at
// request headers. Build it with [New] or [Config.Build]; it is safe for
// concurrent use.
type Filter struct {
	spec keySpec
	now  func() time.Time

	single  *rate.Limiter // key none: every call
	missing *rate.Limiter // calls whose key has no value
	keys    *buckets      // per key; nil for key none
}

// New validates cfg and builds the filter.
func New(cfg Config, opts ...Option) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	spec, _ := parseKey(cfg.Key)
	limit := rate.Limit(cfg.Rate)
	f := &Filter{spec: spec, now: o.now}
	if spec.kind == keyNone {
		f.single = rate.NewLimiter(limit, cfg.Burst)
		return f, nil
	}
	maxKeys := cfg.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultMaxKeys
	}
	f.missing = rate.NewLimiter(limit, cfg.Burst)
	f.keys = newBuckets(limit, cfg.Burst, maxKeys)
	return f, nil
}

// Name returns "rate_limit".
func (f *Filter) Name() string { return Name }

// OnRequestHeaders takes a token from the call's bucket, or refuses the
// call with RESOURCE_EXHAUSTED, a RetryInfo detail and a retry-after
// trailer when there is none.
func (f *Filter) OnRequestHeaders(_ context.Context, call *pipeline.Call) error {
	now := f.now()
	var ok bool
	var wait time.Duration
	switch key, has := f.keyOf(call); {
	case f.spec.kind == keyNone:
		ok, wait = take(f.single, now)
	case !has:
		ok, wait = take(f.missing, now)
	default:
		ok, wait = f.keys.allow(key, now)
	}
	if ok {
		return nil
	}
	return refuse(wait)
}

// Keys returns the number of per-key buckets the filter holds, not
// counting the one for calls without a key. It is at most max_keys.
func (f *Filter) Keys() int {
	if f.keys == nil {
		return 0
	}
	return f.keys.len()
}

// keyOf returns the call's key, and false when the call has none.
func (f *Filter) keyOf(call *pipeline.Call) (string, bool) {
	switch f.spec.kind {
	case keyPeer:
		return peerIP(call.Peer)
	case keyClaim:
		claims, ok := pipeline.ClaimsKey.Get(call)
		if !ok {
			return "", false
		}
		return claims.String(f.spec.name)
	case keyHeader:
		md := call.Header
		if pipeline.IsHopByHop(f.spec.name) {
			md = call.Inbound // never in the outbound header
		}
		if v := md[f.spec.name]; len(v) > 0 {
			return v[0], true
		}
		return "", false
	}
	return "", false
}

// peerIP returns the address of a client without its port.
func peerIP(addr net.Addr) (string, bool) {
	switch a := addr.(type) {
	case nil:
		return "", false
	case *net.TCPAddr:
		return a.IP.String(), true
	}
	s := addr.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host, true
	}
	return s, s != ""
}

// refuse returns the local reply of a call refused for want of a token:
// the status with its RetryInfo, and the retry-after trailer. wait is
// positive.
func refuse(wait time.Duration) error {
	secs := int64(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	st := status.New(codes.ResourceExhausted, Name+": rate limit exceeded")
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
		st = d
	}
	return pipeline.LocalReply(st, metadata.Pairs(RetryAfterKey, strconv.FormatInt(secs, 10)))
}

var _ pipeline.RequestHeadersHook = (*Filter)(nil)
