package qemutests

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"keel/image/qemu"
)

// harness is what every QEMU test needs: keel's cache (where the Debian
// packages the test profiles name are downloaded once), and keel,
// keel-init and keelctl built from this tree.
type harness struct {
	ctx      context.Context
	cache    string
	keel     string   // the keel binary; keelctl is beside it
	initPath string   // keel-init, for KEEL_INIT
	initBin  []byte   // its bytes
	env      []string // more environment for keel (useArm64)
}

// setUp skips the test if QEMU or one of tools is not installed, then
// prepares the inputs and builds the binaries.
func setUp(t *testing.T, tools ...string) *harness {
	t.Helper()
	if err := qemu.Available(); err != nil {
		t.Skipf("QEMU: %v (apt-get install qemu-system-x86 ovmf)", err)
	}
	need(t, tools...)
	h := &harness{ctx: context.Background(), cache: cacheDir(t)}
	h.keel, h.initBin = buildTools(t)
	h.initPath = filepath.Join(t.TempDir(), "keel-init")
	if err := os.WriteFile(h.initPath, h.initBin, 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// keelCmd is keel with the harness's cache, keel-init and keelctl.
func (h *harness) keelCmd(args ...string) *exec.Cmd {
	cmd := keelCmd(h.keel, h.initPath, h.cache, args...)
	cmd.Env = append(cmd.Env, h.env...)
	return cmd
}

// useArm64 skips the test without QEMU for aarch64, and makes keel build
// aarch64 images with keel-init and keelctl built for arm64 from this tree.
func (h *harness) useArm64(t *testing.T) {
	t.Helper()
	if err := qemu.AvailableFor("aarch64"); err != nil {
		t.Skipf("QEMU for aarch64: %v", err)
	}
	initArm, ctlArm := buildArm64(t)
	h.env = append(h.env, "KEEL_INIT_ARM64="+initArm, "KEEL_CTL_ARM64="+ctlArm)
}

// runKeel runs keel and returns its output, failing the test on an error.
func (h *harness) runKeel(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.keelCmd(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("keel %v: %v\n%s", args, err, out)
	}
	return string(out)
}

const epoch = "1700000000"

// cacheDir is keel's cache as keel finds it: $KEEL_CACHE, else the user's
// cache directory. Tests share it, so packages are downloaded once.
func cacheDir(t *testing.T) string {
	if d := os.Getenv("KEEL_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("no cache directory: %v (set KEEL_CACHE)", err)
	}
	return filepath.Join(d, "keel")
}

// buildTools builds keel, keel-init and keelctl from this tree, as `make` does;
// keelctl stays next to keel (see keelCmd). They are built once for the
// whole package (tools.dir, removed by TestMain): each test linking its
// own three binaries cost about ten seconds a test.
func buildTools(t *testing.T) (keel string, initBin []byte) {
	t.Helper()
	tools.once.Do(func() {
		tools.dir, tools.err = os.MkdirTemp("", "keel-qemu-tests-")
		if tools.err != nil {
			return
		}
		for _, c := range []struct{ out, pkg string }{{"keel-init", "./cmd/keel-init"}, {"keelctl", "./cmd/keelctl"}, {"keel", "./cmd/keel"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(tools.dir, c.out), c.pkg)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				tools.err = fmt.Errorf("go build %s: %v\n%s", c.pkg, err, out)
				return
			}
		}
		tools.initBin, tools.err = os.ReadFile(filepath.Join(tools.dir, "keel-init"))
	})
	if tools.err != nil {
		t.Fatal(tools.err)
	}
	return filepath.Join(tools.dir, "keel"), tools.initBin
}

// tools are buildTools' binaries, shared by the package's tests (which
// only run them).
var tools struct {
	once    sync.Once
	dir     string
	initBin []byte
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tools.dir != "" {
		os.RemoveAll(tools.dir)
	}
	os.Exit(code)
}

// keelctlPath is the keelctl tools built beside keel.
func keelctlPath(keel string) string { return filepath.Join(filepath.Dir(keel), "keelctl") }

func keelCmd(keel, initPath, cache string, args ...string) *exec.Cmd {
	cmd := exec.Command(keel, args...)
	cmd.Env = append(os.Environ(), "KEEL_CACHE="+cache, "KEEL_INIT="+initPath, "KEEL_CTL="+keelctlPath(keel), "SOURCE_DATE_EPOCH="+epoch)
	return cmd
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (.ci/run installs it)", tool)
		}
	}
}

func sha256File(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}
