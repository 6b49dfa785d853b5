package pipeline_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/manifold-grpc/manifold/pipeline"
)

func TestUpstreamResultsAndContext(t *testing.T) {
	call := &pipeline.Call{}
	if got := pipeline.UpstreamResults(call); got != nil {
		t.Fatalf("fresh call has results %v", got)
	}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pipeline.RecordUpstream(call, pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "g", Member: "m"}, Code: codes.Unavailable})
		}()
	}
	wg.Wait()
	if got := pipeline.UpstreamResults(call); len(got) != 10 || got[0].Code != codes.Unavailable {
		t.Errorf("results %v", got)
	}
	ctx := pipeline.ContextWithUpstream(context.Background(), pipeline.Upstream{Cluster: "c", Member: "n1"})
	if u, ok := pipeline.UpstreamFromContext(ctx); !ok || u.Cluster != "c" || u.Member != "n1" {
		t.Errorf("UpstreamFromContext = %v %v", u, ok)
	}
	if _, ok := pipeline.UpstreamFromContext(context.Background()); ok {
		t.Error("empty context has an upstream")
	}
}

type nopConfig struct{}

func (nopConfig) Validate() error { return nil }
func (nopConfig) Build(pipeline.BuildEnv) (pipeline.Filter, error) {
	return pipeline.RequestHeadersFunc("nop", func(context.Context, *pipeline.Call) error { return nil }), nil
}

// registryRuns makes each run's module name unique, so the test can run
// more than once in a process (-count).
var registryRuns atomic.Int32

func TestRegistry(t *testing.T) {
	name := fmt.Sprintf("test.nop.%d", registryRuns.Add(1))
	pipeline.Register(pipeline.Module{Name: name, New: func() pipeline.FilterConfig { return nopConfig{} }})
	m, ok := pipeline.Lookup(name)
	if !ok {
		t.Fatal("not registered")
	}
	f, err := m.New().Build(pipeline.BuildEnv{})
	if err != nil || f.Name() != "nop" {
		t.Fatalf("Build = %v, %v", f, err)
	}
	found := false
	for _, n := range pipeline.Modules() {
		found = found || n == name
	}
	if !found {
		t.Errorf("Modules lacks %s", name)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	pipeline.Register(pipeline.Module{Name: name, New: func() pipeline.FilterConfig { return nopConfig{} }})
}

func TestClaims(t *testing.T) {
	call := &pipeline.Call{}
	if _, ok := pipeline.ClaimsKey.Get(call); ok {
		t.Fatal("claims on a fresh call")
	}
	pipeline.ClaimsKey.Set(call, pipeline.Claims{"sub": "alice", "n": float64(3), "roles": []any{"a"}})
	c, _ := pipeline.ClaimsKey.Get(call)
	if c.Subject() != "alice" {
		t.Errorf("Subject = %q", c.Subject())
	}
	if s, ok := c.String("n"); !ok || s != "3" {
		t.Errorf("String(n) = %q %v", s, ok)
	}
	if _, ok := c.String("roles"); ok {
		t.Error("a list formatted as a string")
	}
}

// TestUpstreamResultsShared: a reader's slice never changes under it, even
// while the terminal records more results (run with -race).
func TestUpstreamResultsShared(t *testing.T) {
	call := &pipeline.Call{}
	pipeline.RecordUpstream(call, pipeline.UpstreamResult{Code: codes.OK})
	seen := pipeline.UpstreamResults(call)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			pipeline.RecordUpstream(call, pipeline.UpstreamResult{Code: codes.Unavailable})
		}
	}()
	for range 1000 {
		if len(seen) != 1 || seen[0].Code != codes.OK {
			t.Fatalf("the first reader's results changed: %v", seen)
		}
		if got := pipeline.UpstreamResults(call); len(got) == 0 || got[0].Code != codes.OK {
			t.Fatalf("results = %v", got)
		}
	}
	<-done
	if got := pipeline.UpstreamResults(call); len(got) != 1001 {
		t.Errorf("%d results, want 1001", len(got))
	}
}
