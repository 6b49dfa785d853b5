package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/auth"
	"github.com/manifold-grpc/manifold/pipeline"
)

// fuzzReasons are the refusals a call without a good token may get.
var fuzzReasons = []string{
	"auth: token missing", "auth: more than one token header", "auth: not a bearer token",
	"auth: empty bearer token", "auth: token too large", "auth: malformed token",
	"auth: wrong issuer", "auth: bad signature", "auth: algorithm not allowed",
	"auth: unknown signing key", "auth: invalid token", "auth: invalid claims",
	"auth: token expired", "auth: token has no exp", "auth: token not yet valid",
	"auth: wrong audience", "auth: unsupported critical header", "auth: token issued in the future",
}

// http2Value reports whether an HTTP/2 header value may hold s: no
// control characters other than tab (RFC 9113 section 8.2.1, as
// golang.org/x/net/http2 checks it).
func http2Value(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f })
}

// allSpaces reports whether s holds only spaces.
func allSpaces(s string) bool { return strings.Trim(s, " ") == "" }

// FuzzRequestHeaders runs the filter's request hook on calls with
// arbitrary authorization values around one good HMAC token, on a public,
// an allow_missing and a require method. It checks that
//
//   - the call passes exactly when the rule needs nothing, or the only
//     value is a case-insensitive "Bearer", spaces, the good token and
//     spaces (or, for allow_missing, there is no value);
//   - a refusal is UNAUTHENTICATED with one of the filter's reasons;
//   - the token header is gone unless keep_token, and then unchanged;
//   - a client's x-jwt-sub never reaches upstream: only the verified
//     subject does, after a pass;
//   - the client's view of the headers (call.Inbound) never changes.
func FuzzRequestHeaders(f *testing.F) {
	dir := f.TempDir()
	secret := []byte("0123456789abcdef0123456789abcdef-fuzz-secret")
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		f.Fatal(err)
	}
	filter, err := auth.New(auth.Config{
		Providers: []auth.Provider{{
			Name: "hmac", Issuer: "fuzz.test", Audiences: []string{"api.test"},
			Algorithms: []string{"HS256"}, HMACSecretFile: secretFile,
		}},
		Rules: []auth.Rule{
			{Methods: []string{"/pub.*"}, Action: auth.Public},
			{Methods: []string{"/opt.*"}, Action: auth.AllowMissing},
		},
		ForwardClaims: map[string]string{"sub": "x-jwt-sub"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = filter.Close() })
	keep, err := auth.New(auth.Config{
		Providers: []auth.Provider{{
			Name: "hmac", Issuer: "fuzz.test", Audiences: []string{"api.test"},
			Algorithms: []string{"HS256"}, HMACSecretFile: secretFile,
		}},
		KeepToken: true,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = keep.Close() })
	good, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "fuzz.test", "aud": "api.test", "sub": "alice",
		"exp": time.Now().Add(24 * time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		f.Fatal(err)
	}

	f.Add("Bearer ", "", "", uint8(1), uint8(0), false)
	f.Add("bearer   ", "  ", "forged", uint8(1), uint8(1), false)
	f.Add("Bearer ", "x", "", uint8(1), uint8(2), true)
	f.Add("Basic ", "", "", uint8(2), uint8(0), false)
	f.Add("Bearer ", "", "", uint8(0), uint8(1), true)
	f.Add("Bearer\t", "", "alice", uint8(3), uint8(2), false)
	f.Fuzz(func(t *testing.T, prefix, suffix, forged string, count, methodKind uint8, keepToken bool) {
		if !http2Value(prefix) || !http2Value(suffix) {
			// grpc-go's HTTP/2 transport refuses such a header before
			// any filter runs (and bearer refuses control characters
			// itself: FuzzBearer).
			return
		}
		// count values: the first is prefix+token+suffix, the others
		// prefix+suffix.
		var values []string
		for i := range int(count % 4) {
			if i == 0 {
				values = append(values, prefix+good+suffix)
			} else {
				values = append(values, prefix+suffix)
			}
		}
		method := [...]string{"/pub.S/M", "/opt.S/M", "/req.S/M"}[methodKind%3]
		in := metadata.MD{}
		if len(values) > 0 {
			in["authorization"] = values
		}
		if forged != "" {
			in["x-jwt-sub"] = []string{forged}
		}
		call := &pipeline.Call{Method: method, Inbound: in, Header: in.Copy()}
		inBefore := in.Copy()
		fl := filter
		if keepToken {
			fl = keep
		}

		err := fl.OnRequestHeaders(context.Background(), call)

		goodValue := len(values) == 1 && len(prefix) >= 7 && strings.EqualFold(prefix[:6], "bearer") &&
			allSpaces(prefix[6:]) && allSpaces(suffix)
		var wantPass bool
		switch {
		case method == "/pub.S/M" && !keepToken:
			wantPass = true
		case method == "/opt.S/M" && !keepToken:
			wantPass = len(values) == 0 || goodValue
		default:
			wantPass = goodValue
		}
		if (err == nil) != wantPass {
			t.Fatalf("%s with %q: error %v, want pass %v", method, values, err, wantPass)
		}
		if err != nil {
			st := status.Convert(err)
			if st.Code() != codes.Unauthenticated || !slices.Contains(fuzzReasons, st.Message()) {
				t.Fatalf("%s with %q: refused with %v %q", method, values, st.Code(), st.Message())
			}
		}
		if keepToken {
			if !slices.Equal(call.Header["authorization"], values) {
				t.Fatalf("keep_token: authorization %q, sent %q", call.Header["authorization"], values)
			}
		} else if _, ok := call.Header["authorization"]; ok {
			t.Fatalf("authorization forwarded: %q", call.Header["authorization"])
		}
		if !keepToken {
			claims, ok := pipeline.ClaimsKey.Get(call)
			verified := err == nil && len(values) > 0 && method != "/pub.S/M"
			switch got := call.Header["x-jwt-sub"]; {
			case verified && (!slices.Equal(got, []string{"alice"}) || !ok || claims.Subject() != "alice"):
				t.Fatalf("verified call: x-jwt-sub %q, claims %v", got, claims)
			case !verified && (len(got) > 0 || ok):
				t.Fatalf("unverified call: x-jwt-sub %q, claims %v", got, claims)
			}
		}
		if len(in) != len(inBefore) {
			t.Fatalf("Inbound changed: %v, was %v", in, inBefore)
		}
		for k, v := range inBefore {
			if !slices.Equal(in[k], v) {
				t.Fatalf("Inbound changed: %v, was %v", in, inBefore)
			}
		}
	})
}
