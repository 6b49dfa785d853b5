package pipeline_test

import (
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/pipeline"
)

func TestOutboundHeader(t *testing.T) {
	in := metadata.MD{
		"kept":             {"a", "b"},
		"utf8":             {"café"},
		"mixed":            {"ok", "naïve"},
		"data-bin":         {"\x00\xffé"},
		"connection":       {"close"},
		"te":               {"trailers"},
		":authority":       {"x"},
		"x-manifold-route": {"spoof"},
		"content-type":     {"application/grpc"},
		"Upper":            {"x"},
	}
	out := pipeline.OutboundHeader(in)
	want := metadata.MD{"kept": {"a", "b"}, "mixed": {"ok"}, "data-bin": {"\x00\xffé"}}
	if len(out) != len(want) {
		t.Fatalf("OutboundHeader = %v, want %v", out, want)
	}
	for k, v := range want {
		if len(out[k]) != len(v) || out[k][0] != v[0] {
			t.Errorf("%s = %q, want %q", k, out[k], v)
		}
	}
	out["kept"][0] = "changed"
	if in["kept"][0] != "a" {
		t.Error("OutboundHeader shares values with its input")
	}
	resp := pipeline.ResponseHeader(metadata.MD{"server": {"é"}, "ok": {"1"}, "grpc-status": {"0"}})
	if len(resp) != 1 || resp["ok"][0] != "1" {
		t.Errorf("ResponseHeader = %v", resp)
	}
}
