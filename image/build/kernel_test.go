package build

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"keel/profiles"
	"keel/rootfs"
	"keel/rootfs/oci"
)

// TestKernelFromImage builds with kernel.image: the kernel and the modules
// the initrd needs come out of an OCI image (written here as an oci:
// layout), and nothing else of the image is used.
func TestKernelFromImage(t *testing.T) {
	for _, tool := range []string{"mcopy", "xz", "cpio"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (.ci/run installs it)", tool)
		}
	}
	if _, err := os.Stat("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"); err != nil {
		t.Skip("systemd-boot not installed: apt-get install systemd-boot-efi")
	}
	dir := t.TempDir()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	files := []struct{ name, body string }{
		{"boot/vmlinuz-9.9.9", "the kernel"},
		{"lib/modules/9.9.9/modules.dep", "kernel/a.ko: kernel/b.ko\nkernel/b.ko:\nkernel/c.ko:\n"},
		{"lib/modules/9.9.9/kernel/a.ko", "module a"},
		{"lib/modules/9.9.9/kernel/b.ko", "module b"},
		{"lib/modules/9.9.9/kernel/c.ko", "module c, not asked for"},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
	}
	tw.Close()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.Write(filepath.Join(dir, "kernel-image"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	// oci: references name an image by its org.opencontainers.image.ref.name;
	// with a single image the reference needs no tag.
	prof := filepath.Join(dir, "p.yaml")
	os.WriteFile(prof, []byte("name: k\nversion: \"1\"\nkernel:\n  image: oci:kernel-image\n  path: /boot/vmlinuz-9.9.9\n  modules: [a]\ndisk: {esp: 34MiB, slot: 8MiB, data: 8MiB}\n"), 0o644)
	p, err := profiles.Load(prof)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "disk.img")
	apply := func(ctx context.Context, tr *rootfs.Tree, ref string) error {
		_, err := oci.Apply(ctx, tr, ref, oci.Options{CacheDir: filepath.Join(dir, "cache")})
		return err
	}
	res, err := Build(context.Background(), p, Options{Output: out, KeelInit: []byte("\x7fELF init"), Keelctl: []byte("\x7fELF ctl"), ApplyImage: apply})
	if err != nil {
		t.Fatal(err)
	}
	if res.Modules != 2 {
		t.Errorf("%d modules in the initrd, want 2 (a and its dependency b)", res.Modules)
	}
	esp, _ := res.Layout.Find("esp")
	at := "-i" + out + "@@" + itoa(esp.Start)
	kernel, err := exec.Command("mcopy", at, "-n", "::/keel/a/vmlinuz", "-").Output()
	if err != nil || string(kernel) != "the kernel" {
		t.Fatalf("kernel on the ESP: %q, %v", kernel, err)
	}
	initrd, err := exec.Command("mcopy", at, "-n", "::/keel/a/initrd", "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	xz := exec.Command("xz", "-dc")
	xz.Stdin = bytes.NewReader(initrd)
	cpioIn, err := xz.Output()
	if err != nil {
		t.Fatal(err)
	}
	list := exec.Command("cpio", "-it")
	list.Stdin = bytes.NewReader(cpioIn)
	names, err := list.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -it: %v\n%s", err, names)
	}
	for _, want := range []string{"lib/modules/9.9.9/kernel/a.ko", "lib/modules/9.9.9/kernel/b.ko"} {
		if !strings.Contains(string(names), want) {
			t.Errorf("initrd lacks %s:\n%s", want, names)
		}
	}
	if strings.Contains(string(names), "c.ko") {
		t.Errorf("initrd has a module nobody asked for:\n%s", names)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
