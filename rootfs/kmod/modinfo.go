package kmod

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// A kernel package unpacked with `dpkg -x` has no modules.dep: Debian's
// linux-image postinst runs depmod to make it on the installed system. So
// when modules.dep is missing, Resolve falls back to what every module
// file says itself: the "depends=" field of its .modinfo section, written by
// the kernel build (modpost), listing the modules it needs directly. The
// directory is walked once to map names to files; a module's .modinfo is
// read only when the walk from the requested names reaches it.

// maxModuleSize bounds how much of a compressed module is decompressed to
// read its .modinfo; the largest Debian modules are a few tens of MB.
const maxModuleSize = 512 << 20

// scanModules maps every module file under modDir by name. Deps are filled
// in later by modinfoDeps.
func scanModules(modDir string) (*index, error) {
	idx := newIndex()
	// WalkDir does not follow symlinks, so Debian's build/ and source/
	// links into the kernel headers are not entered.
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(modDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !isModuleFile(rel) {
			return nil
		}
		m := &Module{Name: Name(rel), Path: rel}
		if other, dup := idx.byName[m.Name]; dup {
			// depmod would pick one by its search order; without
			// modules.dep there is no telling which the kernel's user
			// meant.
			return fmt.Errorf("module %s is both %s and %s (run depmod to write modules.dep)", m.Name, other.Path, rel)
		}
		idx.byName[m.Name] = m
		idx.byPath[rel] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning kernel modules in %s: %w", modDir, err)
	}
	idx.loadDeps = func(m *Module) error { return modinfoDeps(modDir, idx, m) }
	idx.source = "the modules' .modinfo"
	return idx, nil
}

// modinfoDeps fills m.Deps from the module's own "depends=" field.
func modinfoDeps(modDir string, idx *index, m *Module) error {
	file := filepath.Join(modDir, filepath.FromSlash(m.Path))
	info, err := readModinfo(file)
	if err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	m.Deps = nil
	for _, kv := range info {
		v, ok := strings.CutPrefix(kv, "depends=")
		if !ok {
			continue
		}
		for _, d := range strings.Split(v, ",") {
			if d = Name(strings.TrimSpace(d)); d == "" || d == "." {
				continue
			}
			if _, ok := idx.byName[d]; !ok {
				return fmt.Errorf("%s depends on %s, which is not in %s", m.Path, d, modDir)
			}
			m.Deps = append(m.Deps, d)
		}
	}
	return nil
}

// readModinfo returns the NUL-separated "key=value" strings of a module's
// .modinfo section.
func readModinfo(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.ReaderAt = f
	if dec, err := decompressor(file, f); err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	} else if dec != nil {
		// ELF needs random access: inflate the whole (bounded) module.
		b, err := io.ReadAll(io.LimitReader(dec, maxModuleSize+1))
		dec.Close()
		if err != nil {
			return nil, fmt.Errorf("decompressing: %w", err)
		}
		if len(b) > maxModuleSize {
			return nil, fmt.Errorf("decompresses to more than %d bytes", maxModuleSize)
		}
		r = bytes.NewReader(b)
	}
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %w", err)
	}
	defer ef.Close()
	sec := ef.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	if sec.Size > maxModuleSize {
		return nil, fmt.Errorf(".modinfo section of %d bytes", sec.Size)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo: %w", err)
	}
	var out []string
	for _, s := range strings.Split(string(data), "\x00") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// decompressor returns a reader of the module's ELF image for a compressed
// module, or nil for a plain one.
func decompressor(file string, r io.Reader) (io.ReadCloser, error) {
	switch {
	case strings.HasSuffix(file, ".ko.xz"):
		x, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(x), nil
	case strings.HasSuffix(file, ".ko.zst"):
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxModuleSize))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case strings.HasSuffix(file, ".ko.gz"):
		return gzip.NewReader(r)
	}
	return nil, nil
}
