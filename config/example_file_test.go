package config_test

import (
	"testing"

	"github.com/manifold-grpc/manifold/config"
	_ "github.com/manifold-grpc/manifold/filters/logging"
	_ "github.com/manifold-grpc/manifold/filters/metadata"
)

// TestReferenceFile: docs/manifold.example.yaml passes validation.
func TestReferenceFile(t *testing.T) {
	if _, err := config.Load("../docs/manifold.example.yaml"); err != nil {
		t.Fatal(err)
	}
}
