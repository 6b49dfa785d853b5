package pipeline

import "fmt"

// Claims are the verified claims of the caller's credentials (a JWT's
// payload, say), as the auth filter stores them for later filters: access
// logs, header mutation, routing, a user's tenant check. They are
// read-only: the auth filter's cache of verified tokens hands the same map,
// and the values nested in it, to every call that presents the same token,
// so a filter that changed them would change other calls' claims.
type Claims map[string]any

// ClaimsKey holds a call's verified claims. Only an authenticating filter
// sets it; its absence means the caller is not authenticated.
var ClaimsKey = NewKey[Claims]("pipeline.claims")

// Subject returns the "sub" claim, or "".
func (c Claims) Subject() string {
	s, _ := c.String("sub")
	return s
}

// String returns a claim as a string: strings as they are, numbers and
// booleans formatted; false when the claim is missing or a list or object.
func (c Claims) String(name string) (string, bool) {
	switch v := c[name].(type) {
	case string:
		return v, true
	case bool, float64, int, int64, uint64:
		return fmt.Sprint(v), true
	}
	return "", false
}
