package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// assets holds keel-init when the Makefile built it before keel.
//
//go:embed assets
var assets embed.FS

// keelInit returns the static keel-init binary to put into images.
func keelInit(ctx context.Context) ([]byte, error) {
	return helperBinary(ctx, "keel-init", "KEEL_INIT")
}

// keelctl returns the static keelctl binary every image carries at
// /usr/bin/keelctl.
func keelctl(ctx context.Context) ([]byte, error) { return helperBinary(ctx, "keelctl", "KEEL_CTL") }

// helperBinary returns one of keel's static helper binaries from the first
// place that has it:
//  1. the file named by $env;
//  2. embedded in this binary (make);
//  3. next to this executable;
//  4. built now from the source tree this command runs in, when the go
//     tool is available: the `go run ./cmd/keel` case.
func helperBinary(ctx context.Context, name, env string) ([]byte, error) {
	if p := os.Getenv(env); p != "" {
		return os.ReadFile(p)
	}
	if b, err := assets.ReadFile("assets/" + name); err == nil && len(b) > 0 {
		return b, nil
	}
	if exe, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(exe), name)); err == nil {
			return b, nil
		}
	}
	b, err := buildStatic(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("%s not found (not embedded, not next to keel, %s unset) and could not be built: %w", name, env, err)
	}
	return b, nil
}

// buildStatic builds ./cmd/<name> statically from the source tree this
// command runs in.
func buildStatic(ctx context.Context, name string) ([]byte, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, err
	}
	mod, err := exec.CommandContext(ctx, goTool, "list", "-m", "-f", "{{.Path}} {{.Dir}}").Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m: %w", err)
	}
	path, dir, _ := strings.Cut(strings.TrimSpace(string(mod)), " ")
	if path != "keel" {
		return nil, errors.New("not inside keel's source tree")
	}
	tmp, err := os.MkdirTemp("", name+"-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, name)
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/"+name)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, b)
	}
	return os.ReadFile(out)
}
