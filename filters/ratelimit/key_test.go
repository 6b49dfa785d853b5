package ratelimit_test

import (
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/filters/ratelimit"
	"github.com/manifold-grpc/manifold/pipeline"
)

// TestKeys: with a burst of 1 and a stopped clock, a second call is refused
// exactly when it has the same key as the first: the table covers how each
// key kind reads a call.
func TestKeys(t *testing.T) {
	t.Parallel()
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	hdr := func(kv ...string) metadata.MD { return metadata.Pairs(kv...) }
	long := strings.Repeat("t", 500)
	for _, tc := range []struct {
		name      string
		key       string
		a, b      call
		sameQuota bool
	}{
		{name: "none: everything shares", key: "",
			a: call{peer: tcp("10.0.0.1", 1)}, b: call{peer: tcp("10.0.0.2", 2)}, sameQuota: true},
		{name: "none spelled out", key: "none",
			a: call{md: hdr("x-tenant", "a")}, b: call{md: hdr("x-tenant", "b")}, sameQuota: true},
		{name: "peer: port ignored", key: "peer",
			a: call{peer: tcp("10.0.0.1", 1000)}, b: call{peer: tcp("10.0.0.1", 2000)}, sameQuota: true},
		{name: "peer: IPs differ", key: "peer",
			a: call{peer: tcp("10.0.0.1", 1000)}, b: call{peer: tcp("10.0.0.2", 1000)}},
		{name: "peer: IPv4 and its IPv6-mapped form", key: "peer",
			a: call{peer: tcp("10.0.0.1", 1)}, b: call{peer: tcp("::ffff:10.0.0.1", 2)}, sameQuota: true},
		{name: "peer: IPv6", key: "peer",
			a: call{peer: tcp("2001:db8::1", 1)}, b: call{peer: tcp("2001:db8::2", 1)}},
		{name: "peer: other address types by host", key: "peer",
			a: call{peer: &net.UDPAddr{IP: net.ParseIP("10.0.0.9"), Port: 1}}, b: call{peer: &net.UDPAddr{IP: net.ParseIP("10.0.0.9"), Port: 2}}, sameQuota: true},
		{name: "peer: unknown peers share the missing bucket", key: "peer",
			a: call{}, b: call{}, sameQuota: true},
		{name: "peer: a known peer is not in the missing bucket", key: "peer",
			a: call{}, b: call{peer: tcp("10.0.0.1", 1)}},
		{name: "claim: same subject", key: "claim:sub",
			a: call{claims: pipeline.Claims{"sub": "alice"}, peer: tcp("10.0.0.1", 1)},
			b: call{claims: pipeline.Claims{"sub": "alice"}, peer: tcp("10.0.0.2", 1)}, sameQuota: true},
		{name: "claim: subjects differ", key: "claim:sub",
			a: call{claims: pipeline.Claims{"sub": "alice"}}, b: call{claims: pipeline.Claims{"sub": "bob"}}},
		{name: "claim: numbers are formatted", key: "claim:tenant",
			a: call{claims: pipeline.Claims{"tenant": float64(7)}}, b: call{claims: pipeline.Claims{"tenant": "7"}}, sameQuota: true},
		{name: "claim: unauthenticated calls share", key: "claim:sub",
			a: call{}, b: call{claims: pipeline.Claims{"iss": "x"}}, sameQuota: true},
		{name: "claim: missing is not the empty string", key: "claim:sub",
			a: call{}, b: call{claims: pipeline.Claims{"sub": ""}}},
		{name: "claim: a list claim counts as missing", key: "claim:groups",
			a: call{claims: pipeline.Claims{"groups": []any{"a"}}}, b: call{}, sameQuota: true},
		{name: "header: same value", key: "header:x-tenant",
			a: call{md: hdr("x-tenant", "acme")}, b: call{md: hdr("x-tenant", "acme", "x-other", "1")}, sameQuota: true},
		{name: "header: values differ", key: "header:x-tenant",
			a: call{md: hdr("x-tenant", "acme")}, b: call{md: hdr("x-tenant", "umbrella")}},
		{name: "header: name is case-insensitive", key: "header:X-Tenant",
			a: call{md: hdr("x-tenant", "acme")}, b: call{md: hdr("x-tenant", "umbrella")}},
		{name: "header: first value counts", key: "header:x-tenant",
			a: call{md: hdr("x-tenant", "acme", "x-tenant", "one")}, b: call{md: hdr("x-tenant", "acme", "x-tenant", "two")}, sameQuota: true},
		{name: "header: absent headers share", key: "header:x-tenant",
			a: call{}, b: call{md: hdr("x-other", "1")}, sameQuota: true},
		{name: "header: read after earlier filters", key: "header:x-tenant",
			a: call{md: hdr("x-tenant", "forged"), edit: func(md metadata.MD) { md.Set("x-tenant", "real") }},
			b: call{md: hdr("x-tenant", "real")}, sameQuota: true},
		{name: "header: removed by an earlier filter counts as missing", key: "header:x-tenant",
			a: call{md: hdr("x-tenant", "acme"), edit: func(md metadata.MD) { md.Delete("x-tenant") }},
			b: call{}, sameQuota: true},
		{name: "header: hop-by-hop keys read from the client", key: "header:user-agent",
			a: call{md: hdr("user-agent", "grpc-go/1")}, b: call{md: hdr("user-agent", "grpc-java/1")}},
		{name: "header: long values compared whole", key: "header:x-tenant",
			a: call{md: hdr("x-tenant", long+"a")}, b: call{md: hdr("x-tenant", long+"b")}},
		{name: "header: long values equal", key: "header:x-tenant",
			a: call{md: hdr("x-tenant", long)}, b: call{md: hdr("x-tenant", long)}, sameQuota: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFilter(t, ratelimit.Config{Rate: 1, Burst: 1, Key: tc.key}, newClock())
			if got := code(f, tc.a); got != codes.OK {
				t.Fatalf("first call: %v", got)
			}
			want := codes.OK
			if tc.sameQuota {
				want = codes.ResourceExhausted
			}
			if got := code(f, tc.b); got != want {
				t.Errorf("second call: %v, want %v", got, want)
			}
		})
	}
}
