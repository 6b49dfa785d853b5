package build_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/manifold-grpc/manifold/bench/internal/build"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestModules: run from inside the bench module (as go test does), it
// finds the bench module and the product's module, which holds
// cmd/manifold.
func TestModules(t *testing.T) {
	t.Parallel()
	benchDir, rootDir, err := build.Modules(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(benchDir, "go.mod")); err != nil || filepath.Base(benchDir) != "bench" {
		t.Errorf("bench dir %q: %v", benchDir, err)
	}
	if filepath.Dir(benchDir) != rootDir {
		t.Errorf("root dir %q, want the parent of %q (the replace directive)", rootDir, benchDir)
	}
	if _, err := os.Stat(filepath.Join(rootDir, "cmd", "manifold")); err != nil {
		t.Errorf("root dir %q holds no cmd/manifold: %v", rootDir, err)
	}
}

// TestModulesOutsideBench: from a directory outside any module, Modules
// refuses with the hint to run from bench/.
func TestModulesOutsideBench(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("GOFLAGS", "")
	t.Setenv("GOWORK", "off")
	_, _, err := build.Modules(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "run from the bench/ directory") {
		t.Errorf("Modules() outside a module = %v, want the hint", err)
	}
}

// TestGoOutput checks the trimmed output, and that a failure carries the
// command line and the go command's standard error.
func TestGoOutput(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	got, err := build.GoOutput(ctx, "", "list", "-m")
	if err != nil || got != "github.com/manifold-grpc/manifold/bench" {
		t.Errorf("GoOutput(list -m) = %q, %v", got, err)
	}
	_, err = build.GoOutput(ctx, "", "list", "./no-such-package")
	if err == nil || !strings.HasPrefix(err.Error(), "go list ./no-such-package: exit status 1\n") || !strings.Contains(err.Error(), "no-such-package") {
		t.Errorf("GoOutput of a failing command = %v", err)
	}
}

// TestGo builds a main package into a directory and to a file name, and
// runs both binaries.
func TestGo(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	src := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/hello\n\ngo 1.22\n",
		"main.go": "package main\n\nfunc main() { println(\"hello from the build\") }\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	outDir := t.TempDir()
	named := filepath.Join(t.TempDir(), "renamed")
	for _, out := range []string{outDir, named} {
		if err := build.Go(ctx, src, out, "."); err != nil {
			t.Fatal(err)
		}
	}
	for _, bin := range []string{filepath.Join(outDir, "hello"), named} {
		out, err := exec.CommandContext(ctx, bin).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "hello from the build" {
			t.Errorf("%s: %q, %v", bin, out, err)
		}
	}
	if err := build.Go(ctx, src, outDir, "./missing"); err == nil {
		t.Error("building a missing package succeeded")
	}
}

func ExampleGoOutput() {
	mod, err := build.GoOutput(context.Background(), "", "list", "-m")
	fmt.Println(mod, err)
	// Output: github.com/manifold-grpc/manifold/bench <nil>
}
