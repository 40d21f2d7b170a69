package main

import (
	"bytes"
	"context"
	"debug/elf"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// assets holds keel-init and keelctl, for x86_64 and aarch64, when the
// Makefile built them before keel.
//
//go:embed assets
var assets embed.FS

// keelInit returns the static keel-init binary to put into images of
// arch (a profile's: x86_64 or aarch64).
func keelInit(ctx context.Context, arch string) ([]byte, error) {
	return helperBinary(ctx, "keel-init", "KEEL_INIT", arch)
}

// keelctl returns the static keelctl binary every image of arch carries
// at /usr/bin/keelctl.
func keelctl(ctx context.Context, arch string) ([]byte, error) {
	return helperBinary(ctx, "keelctl", "KEEL_CTL", arch)
}

// helperArch is how a helper binary for a profile's arch is named and
// built: the x86_64 ones carry no suffix, as before there were others.
var helperArch = map[string]struct {
	suffix, goarch string
	machine        elf.Machine
}{
	"x86_64":  {"", "amd64", elf.EM_X86_64},
	"aarch64": {"-arm64", "arm64", elf.EM_AARCH64},
}

// helperBinary returns one of keel's static helper binaries for arch from
// the first place that has it (for aarch64, name and env get the suffix
// -arm64 and _ARM64):
//  1. the file named by $env;
//  2. embedded in this binary (make);
//  3. next to this executable;
//  4. built now from the source tree this command runs in, when the go
//     tool is available: the `go run ./cmd/keel` case.
//
// A binary for another machine is refused: it would only fail at boot.
func helperBinary(ctx context.Context, name, env, arch string) ([]byte, error) {
	a, ok := helperArch[arch]
	if !ok {
		return nil, fmt.Errorf("%s: no build for architecture %q", name, arch)
	}
	file := name + a.suffix
	if a.suffix != "" {
		env += "_" + strings.ToUpper(strings.TrimPrefix(a.suffix, "-"))
	}
	b, from, err := findHelper(ctx, name, file, env, a.goarch)
	if err != nil {
		return nil, err
	}
	if err := checkMachine(b, a.machine); err != nil {
		return nil, fmt.Errorf("%s (%s) for %s: %w", file, from, arch, err)
	}
	return b, nil
}

func findHelper(ctx context.Context, name, file, env, goarch string) (b []byte, from string, err error) {
	if p := os.Getenv(env); p != "" {
		b, err := os.ReadFile(p)
		return b, "$" + env, err
	}
	if b, err := assets.ReadFile("assets/" + file); err == nil && len(b) > 0 {
		return b, "embedded", nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), file)
		if b, err := os.ReadFile(p); err == nil {
			return b, p, nil
		}
	}
	b, err = buildStatic(ctx, name, goarch)
	if err != nil {
		return nil, "", fmt.Errorf("%s not found (not embedded, not next to keel, %s unset) and could not be built: %w", file, env, err)
	}
	return b, "built from source", nil
}

// checkMachine reports whether b is an ELF executable for machine.
func checkMachine(b []byte, machine elf.Machine) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	if f.Machine != machine {
		return fmt.Errorf("built for %s, want %s", f.Machine, machine)
	}
	return nil
}

// buildStatic builds ./cmd/<name> statically for goarch from the source
// tree this command runs in.
func buildStatic(ctx context.Context, name, goarch string) ([]byte, error) {
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
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, b)
	}
	return os.ReadFile(out)
}
