package cluster_test

import (
	"net"
	"testing"
	"time"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// TestReady: a cluster reports ready once it has connected, and not before;
// Close stops the watcher.
func TestReady(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := lis.Addr().String()
	lis.Close()
	cl, err := cluster.New(cluster.Config{Name: "down", Target: "passthrough:///" + down, ConnectTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cl.WatchReady()
	if cl.Ready() == nil {
		t.Error("a cluster with nothing listening is ready")
	}
	cl.Close()

	addr, _ := testbackend.Start(t, &testbackend.Service{})
	up, err := cluster.New(cluster.Config{Name: "up", Target: "passthrough:///" + addr})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	up.WatchReady()
	up.WatchReady()
	deadline := time.Now().Add(10 * time.Second)
	for up.Ready() != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := up.Ready(); err != nil {
		t.Fatal(err)
	}
}
