package methodkind_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/manifold-grpc/manifold/methodkind"
)

func TestKindString(t *testing.T) {
	t.Parallel()
	for k, want := range map[methodkind.Kind]string{
		methodkind.Unknown:         "unknown",
		methodkind.Unary:           "unary",
		methodkind.ClientStreaming: "client_streaming",
		methodkind.ServerStreaming: "server_streaming",
		methodkind.BidiStreaming:   "bidi_streaming",
		methodkind.Kind(9):         "kind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

func TestParseKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    methodkind.Kind
		wantErr bool
	}{
		{in: "unknown", want: methodkind.Unknown},
		{in: "unary", want: methodkind.Unary},
		{in: "client_streaming", want: methodkind.ClientStreaming},
		{in: "server_streaming", want: methodkind.ServerStreaming},
		{in: "bidi_streaming", want: methodkind.BidiStreaming},
		{in: "bidi", want: methodkind.BidiStreaming},
		{in: " Server_Streaming ", want: methodkind.ServerStreaming},
		{in: "", wantErr: true},
		{in: "stream", wantErr: true},
		{in: "kind(9)", wantErr: true},
	}
	for _, tt := range tests {
		got, err := methodkind.ParseKind(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseKind(%q) = %v, %v; want %v, error %t", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "methodkind:") {
			t.Errorf("ParseKind(%q) error %q lacks the package prefix", tt.in, err)
		}
	}
	for k := methodkind.Unknown; k <= methodkind.BidiStreaming; k++ {
		if got, err := methodkind.ParseKind(k.String()); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v; want %v", k.String(), got, err, k)
		}
	}
}

func TestKindStreams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		k              methodkind.Kind
		client, server bool
	}{
		{methodkind.Unknown, false, false},
		{methodkind.Unary, false, false},
		{methodkind.ClientStreaming, true, false},
		{methodkind.ServerStreaming, false, true},
		{methodkind.BidiStreaming, true, true},
	}
	for _, tt := range tests {
		if got := tt.k.ClientStreams(); got != tt.client {
			t.Errorf("%v.ClientStreams() = %t, want %t", tt.k, got, tt.client)
		}
		if got := tt.k.ServerStreams(); got != tt.server {
			t.Errorf("%v.ServerStreams() = %t, want %t", tt.k, got, tt.server)
		}
		if tt.k != methodkind.Unknown {
			if got := methodkind.FromDesc(tt.client, tt.server); got != tt.k {
				t.Errorf("FromDesc(%t, %t) = %v, want %v", tt.client, tt.server, got, tt.k)
			}
		}
	}
}

func TestKindText(t *testing.T) {
	t.Parallel()
	in := `[{"match":"/a.B/C","kind":"bidi"},{"match":"*","kind":"unary"}]`
	var p methodkind.Patterns
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	want := methodkind.Patterns{
		{Match: "/a.B/C", Kind: methodkind.BidiStreaming},
		{Match: "*", Kind: methodkind.Unary},
	}
	if len(p) != len(want) || p[0] != want[0] || p[1] != want[1] {
		t.Fatalf("unmarshalled %+v, want %+v", p, want)
	}
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != `[{"match":"/a.B/C","kind":"bidi_streaming"},{"match":"*","kind":"unary"}]` {
		t.Errorf("marshalled %s", got)
	}

	if err := json.Unmarshal([]byte(`[{"match":"*","kind":"sideways"}]`), &p); err == nil || !strings.Contains(err.Error(), `"sideways"`) {
		t.Errorf("bad kind: error %v, want one naming it", err)
	}
	if _, err := methodkind.Kind(9).MarshalText(); err == nil {
		t.Error("Kind(9).MarshalText() succeeded")
	}
}
