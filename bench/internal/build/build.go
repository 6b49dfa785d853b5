package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// benchModule is the module path of the benchmarks.
const benchModule = "github.com/manifold-grpc/manifold/bench"

// productModule is the module path of Manifold itself.
const productModule = "github.com/manifold-grpc/manifold"

// GoOutput runs the go command in dir (the current directory when empty)
// and returns its trimmed standard output. Its error holds the command's
// standard error.
func GoOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// Go runs go build -o out in dir for pkgs. When out is an existing
// directory, each main package's binary goes into it under its own name.
func Go(ctx context.Context, dir, out string, pkgs ...string) error {
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		out += string(filepath.Separator)
	}
	_, err := GoOutput(ctx, dir, append([]string{"build", "-o", out}, pkgs...)...)
	return err
}

// Modules returns the directories of the bench module (the current
// directory's module) and of the product's module (from the bench
// module's replace directive, as users build it: with its own go.mod). It
// fails unless run from the bench/ directory of the Manifold repo.
func Modules(ctx context.Context) (benchDir, rootDir string, err error) {
	gomod, err := GoOutput(ctx, "", "env", "GOMOD")
	if err != nil || filepath.Base(gomod) != "go.mod" {
		return "", "", fmt.Errorf("run from the bench/ directory of the Manifold repo (go env GOMOD: %q, %v)", gomod, err)
	}
	benchDir = filepath.Dir(gomod)
	if mod, _ := GoOutput(ctx, benchDir, "list", "-m"); mod != benchModule {
		return "", "", fmt.Errorf("run from the bench/ directory of the Manifold repo (module %q)", mod)
	}
	rootDir, err = GoOutput(ctx, benchDir, "list", "-m", "-f", "{{.Dir}}", productModule)
	if err != nil {
		return "", "", err
	}
	return benchDir, rootDir, nil
}
