package kmod

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
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
func scanModules(fsys fs.FS, modDir string) (*index, error) {
	idx := newIndex()
	// WalkDir does not follow symlinks, so Debian's build/ and source/
	// links into the kernel headers are not entered.
	err := fs.WalkDir(fsys, modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		rel := strings.TrimPrefix(p, modDir+"/")
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
	idx.loadDeps = func(m *Module) error { return modinfoDeps(fsys, modDir, idx, m) }
	idx.loadAliases = func() error { return modinfoAliases(fsys, modDir, idx) }
	idx.source = "the modules' .modinfo"
	return idx, nil
}

// modinfoAliases fills idx.aliases from every module's "alias=" fields, as
// depmod writes modules.alias. Only a soft dependency on an alias needs
// them ("pre: crypto-crc32c"), so this runs at most once, and only then.
// Modules are read in path order, which is the order depmod lists a shared
// alias's modules in when they come from one search directory.
func modinfoAliases(fsys fs.FS, modDir string, idx *index) error {
	paths := make([]string, 0, len(idx.byPath))
	for p := range idx.byPath {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		file := path.Join(modDir, p)
		info, err := readModinfo(fsys, file)
		if err != nil {
			return fmt.Errorf("reading %s: %w", file, err)
		}
		for _, kv := range info {
			if a, ok := strings.CutPrefix(kv, "alias="); ok && a != "" {
				idx.aliases[a] = append(idx.aliases[a], idx.byPath[p].Name)
			}
		}
	}
	return nil
}

// modinfoDeps fills m.Deps from the module's own "depends=" field.
func modinfoDeps(fsys fs.FS, modDir string, idx *index, m *Module) error {
	file := path.Join(modDir, m.Path)
	info, err := readModinfo(fsys, file)
	if err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	m.Deps = nil
	for _, kv := range info {
		if v, ok := strings.CutPrefix(kv, "softdep="); ok {
			// The same "pre: a b post: c" text depmod copies into
			// modules.softdep.
			if err := parseSoftdep(strings.NewReader("softdep "+m.Name+" "+v+"\n"), idx); err != nil {
				return fmt.Errorf("%s: softdep: %w", file, err)
			}
			continue
		}
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
func readModinfo(fsys fs.FS, file string) ([]string, error) {
	f, err := fsys.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, ok := f.(io.ReaderAt)
	if !ok {
		// ELF needs random access; a module is at most a few MB.
		b, err := io.ReadAll(io.LimitReader(f, maxModuleSize+1))
		if err != nil {
			return nil, err
		}
		if len(b) > maxModuleSize {
			return nil, fmt.Errorf("more than %d bytes", maxModuleSize)
		}
		r = bytes.NewReader(b)
	}
	if dec, err := decompressor(file, io.NewSectionReader(r, 0, maxModuleSize)); err != nil {
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
