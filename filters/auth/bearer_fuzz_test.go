package auth

import (
	"strings"
	"testing"
)

// FuzzBearer checks the extraction of the token from an authorization
// value. Any value gives a token or one of the four refusals, never both;
// a token is exactly what follows a case-insensitive "Bearer" and a space,
// without surrounding spaces, and holds only RFC 6750 token characters
// (letters, digits, "-._~+/="); and any such token
// written after any spelling of the scheme comes back unchanged.
func FuzzBearer(f *testing.F) {
	f.Add("Bearer abc\r")
	f.Add("Bearer a\x00b")
	f.Add("Bearer abc.def.ghi")
	f.Add("bEaReR    abc  ")
	f.Add("Basic dXNlcjpwYXNz")
	f.Add("Bearer")
	f.Add("Bearer ")
	f.Add("Bearer a b")
	f.Add("Bearer\tabc")
	f.Add("Bearer abc\t")
	f.Add("Bearer \nabc")
	f.Add("Bearer " + strings.Repeat("x", MaxTokenSize+1))
	f.Fuzz(func(t *testing.T, v string) {
		token, why := bearer(v)
		if (token == "") == (why == "") {
			t.Fatalf("bearer(%q) = %q, %q: want a token or a reason", v, token, why)
		}
		// The scheme is the text up to the first space ("Bearer" alone
		// has an empty token); rest is what follows that space.
		hasScheme := len(v) >= 6 && strings.EqualFold(v[:6], "bearer") && (len(v) == 6 || v[6] == ' ')
		rest := ""
		if len(v) > 7 {
			rest = v[7:]
		}
		switch why {
		case "":
			if !hasScheme || strings.Trim(rest, " ") != token || !tokenChars(token) || len(token) > MaxTokenSize {
				t.Fatalf("bearer(%q) = token %q", v, token)
			}
		case reasonNotBearer:
			if hasScheme {
				t.Fatalf("bearer(%q): %s, but it starts with the scheme", v, why)
			}
		case reasonEmpty:
			if !hasScheme || strings.Trim(rest, " ") != "" {
				t.Fatalf("bearer(%q): %s", v, why)
			}
		case reasonTooLarge:
			if !hasScheme || len(strings.Trim(rest, " ")) <= MaxTokenSize {
				t.Fatalf("bearer(%q): %s", v, why)
			}
		case reasonMalformed:
			if !hasScheme || tokenChars(strings.Trim(rest, " ")) {
				t.Fatalf("bearer(%q): %s", v, why)
			}
		default:
			t.Fatalf("bearer(%q): unknown reason %q", v, why)
		}

		// Round trip: a token made of v's other bytes, after a scheme
		// spelled in v's letter case, with spaces around.
		tok := strings.Map(func(r rune) rune {
			if tokenChars(string(r)) {
				return r
			}
			return -1
		}, v)
		if len(tok) > MaxTokenSize {
			tok = tok[:MaxTokenSize]
		}
		if tok == "" {
			return
		}
		scheme := []byte("bearer")
		for i := range scheme {
			if i < len(v) && v[i]&1 == 1 {
				scheme[i] -= 'a' - 'A'
			}
		}
		for _, in := range []string{string(scheme) + " " + tok, string(scheme) + "   " + tok + "  "} {
			if got, why := bearer(in); got != tok {
				t.Fatalf("bearer(%q) = %q, %q; want %q", in, got, why, tok)
			}
		}
	})
}

// tokenChars reports whether s holds only RFC 6750 b64token characters.
func tokenChars(s string) bool {
	for _, r := range s {
		ok := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-._~+/=", r)
		if !ok {
			return false
		}
	}
	return true
}
