// Package kmod resolves the kernel modules an initrd must carry: each
// module a profile names, plus everything it depends on according to the
// kernel's modules.dep, in an order in which they can be loaded one by one
// (dependencies first). It reads the modules directory of an unpacked
// kernel package (lib/modules/<version>/, as `dpkg -x` leaves it) and needs
// neither depmod nor the running kernel.
//
// Module names follow the kernel's rule: '-' and '_' are the same
// character, so "virtio-blk" and "virtio_blk" name one module; names are
// reported with '_'. Module files may be plain (.ko, as Debian 12 ships
// them) or compressed (.ko.xz, .ko.zst, .ko.gz); they are carried as they
// are, and the loader must pass MODULE_INIT_COMPRESSED_FILE to
// finit_module for the compressed ones.
//
// Hard dependencies (modules.dep) are followed, and so are soft
// pre-dependencies (modules.softdep, e.g. ext4's "pre: crypto-crc32c"),
// resolved through modules.alias, so the load list is what modprobe loads.
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Sentinel errors, for callers that tell a bad profile from a bad kernel.
var (
	// ErrNotFound: a requested module is neither in modules.dep nor built in.
	ErrNotFound = errors.New("no such module")
	// ErrCycle: modules.dep has a dependency cycle (depmod never writes
	// one, so the file is damaged or was not written by depmod).
	ErrCycle = errors.New("dependency cycle")
)

// Module is a loadable module.
type Module struct {
	// Name is the module's name with '_' for '-', without the .ko suffix.
	Name string
	// Path is the module file relative to the modules directory,
	// slash-separated, as modules.dep gives it (kernel/fs/ext4/ext4.ko).
	Path string
	// Deps are the names of the modules it needs: from modules.dep, all of
	// them, direct or not, in its order (which depmod writes so that
	// loading from last to first works); from the module's .modinfo (when
	// there is no modules.dep), the direct ones. Only modules that
	// Resolve reached have them.
	Deps []string
}

// Set is the result of Resolve.
type Set struct {
	// Dir is the modules directory that was read: a host path from
	// Resolve, a path in FS from ResolveFS.
	Dir string
	// FS holds Dir's files (modules are read from it when the tree is
	// written).
	FS fs.FS
	// Version is the kernel version: the modules directory's base name.
	// AddToTree puts the modules under /lib/modules/<Version>/.
	Version string
	// Load lists the modules to load, each once, every module after all of
	// its dependencies.
	Load []Module
	// Builtin lists the requested names that are built into the kernel
	// (modules.builtin) and so need no loading, each once, in request
	// order.
	Builtin []string
}

// Name returns the canonical form of a module name or file name: the base
// name, without a .ko (and compression) suffix, '-' turned into '_'.
func Name(s string) string {
	s = path.Base(s)
	for _, suffix := range moduleSuffixes {
		if strings.HasSuffix(s, suffix) {
			s = strings.TrimSuffix(s, suffix)
			break
		}
	}
	return strings.ReplaceAll(s, "-", "_")
}

// moduleSuffixes are the file name endings depmod knows, longest first.
var moduleSuffixes = []string{".ko.zst", ".ko.xz", ".ko.gz", ".ko"}

func isModuleFile(p string) bool {
	for _, suffix := range moduleSuffixes {
		if strings.HasSuffix(p, suffix) && len(p) > len(suffix) && !strings.HasSuffix(p, "/"+suffix) {
			return true
		}
	}
	return false
}

// index is what Resolve reads from a modules directory.
type index struct {
	byName  map[string]*Module
	byPath  map[string]*Module
	builtin map[string]bool
	// softPre maps a module to the names (module names or aliases) that
	// modules.softdep says to load before it ("softdep ext4 pre:
	// crypto-crc32c"); aliases maps an alias to modules, from modules.alias.
	softPre map[string][]string
	aliases map[string][]string
	// source names where the dependencies come from, for errors.
	source string
	// loadDeps, when set, fills in a module's Deps the first time the
	// walk reaches it (the .modinfo fallback); with modules.dep they are
	// all known up front.
	loadDeps func(*Module) error
	// loadAliases, when set, fills aliases the first time a soft
	// dependency needs them (the .modinfo fallback).
	loadAliases func() error
}

func newIndex() *index {
	return &index{byName: map[string]*Module{}, byPath: map[string]*Module{}, builtin: map[string]bool{},
		softPre: map[string][]string{}, aliases: map[string][]string{}}
}

// Resolve reads modDir/modules.dep and modDir/modules.builtin and returns
// the modules to load for names, with their dependencies. Without
// modules.dep (a kernel package unpacked but never installed, so depmod
// has not run), the dependencies come from each module's .modinfo instead.
// A name that is built in is not an error: it goes to Set.Builtin. A name
// that is neither
// is an error wrapping ErrNotFound. The order of Load is fixed by names and
// the files: requested modules in the order given, each preceded by its
// dependencies not already listed, those in the order modprobe loads them.
func Resolve(modDir string, names []string) (*Set, error) {
	return ResolveFS(hostFS{}, filepath.Clean(modDir), names)
}

// hostFS opens host paths as given, relative or absolute, so that errors
// name the directory the caller passed (os.DirFS would want a root and
// paths below it).
type hostFS struct{}

func (hostFS) Open(name string) (fs.File, error) { return os.Open(name) }

// ResolveFS is Resolve for the modules directory dir of fsys (a slash
// path, e.g. "usr/lib/modules/6.1.0-28-amd64" of a tree's FS): a kernel
// package applied to an in-memory tree is read where it is. Set.Dir is
// dir, and AddToTree reads the modules from fsys.
func ResolveFS(fsys fs.FS, dir string, names []string) (*Set, error) {
	idx, err := readIndex(fsys, dir)
	if err != nil {
		return nil, err
	}
	set := &Set{Dir: dir, FS: fsys, Version: path.Base(path.Clean(dir))}
	r := resolver{idx: idx, set: set, state: map[string]int{}}
	seenBuiltin := map[string]bool{}
	for _, raw := range names {
		name := Name(strings.TrimSpace(raw))
		if name == "" || name == "." || strings.ContainsAny(raw, "/\x00") {
			return nil, fmt.Errorf("bad module name %q", raw)
		}
		if _, ok := idx.byName[name]; ok {
			if err := r.visit(name); err != nil {
				return nil, err
			}
			continue
		}
		if idx.builtin[name] {
			if !seenBuiltin[name] {
				seenBuiltin[name] = true
				set.Builtin = append(set.Builtin, name)
			}
			continue
		}
		return nil, fmt.Errorf("module %q: %w in %s (neither in %s nor in modules.builtin)", raw, ErrNotFound, dir, idx.source)
	}
	return set, nil
}

const (
	unvisited = iota
	visiting
	done
)

type resolver struct {
	idx   *index
	set   *Set
	state map[string]int
	stack []string
}

// visit appends name to the load list after its dependencies (a
// depth-first post-order walk). The walk follows each dependency's own
// line too, as modprobe does, so the order is right even if a line's list
// is not; a module met again while its own dependencies are being visited
// closes a cycle.
func (r *resolver) visit(name string) error {
	switch r.state[name] {
	case done:
		return nil
	case visiting:
		i := len(r.stack) - 1
		for i > 0 && r.stack[i] != name {
			i--
		}
		cycle := append(append([]string(nil), r.stack[i:]...), name)
		return fmt.Errorf("%w in %s: %s", ErrCycle, r.idx.source, strings.Join(cycle, " -> "))
	}
	m := r.idx.byName[name]
	if r.idx.loadDeps != nil {
		if err := r.idx.loadDeps(m); err != nil {
			return err
		}
	}
	r.state[name] = visiting
	r.stack = append(r.stack, name)
	// modprobe loads a line's dependencies from the last to the first;
	// following that order keeps ours the same as modprobe's.
	for i := len(m.Deps) - 1; i >= 0; i-- {
		if err := r.visit(m.Deps[i]); err != nil {
			return err
		}
	}
	// Then the soft pre-dependencies, right before the module itself, as
	// libkmod orders them (each hard dependency, then the module's "pre:"
	// modules, then the module): ext4 needs a crc32c driver at mount time
	// without linking to one. One that resolves to nothing (built in, or
	// absent) is skipped, as modprobe skips it.
	for _, soft := range r.idx.softPre[name] {
		deps, err := r.idx.resolveSoft(soft)
		if err != nil {
			return err
		}
		for _, dep := range deps {
			if r.state[dep] == visiting {
				continue // a soft dependency never makes a cycle
			}
			if err := r.visit(dep); err != nil {
				return err
			}
		}
	}
	r.stack = r.stack[:len(r.stack)-1]
	r.state[name] = done
	r.set.Load = append(r.set.Load, *m)
	return nil
}

func readIndex(fsys fs.FS, modDir string) (*index, error) {
	depFile := path.Join(modDir, "modules.dep")
	var idx *index
	f, err := fsys.Open(depFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if st, err := fs.Stat(fsys, modDir); err != nil {
			return nil, fmt.Errorf("reading kernel modules: %w", err)
		} else if !st.IsDir() {
			return nil, fmt.Errorf("reading kernel modules: %s is not a directory", modDir)
		}
		if idx, err = scanModules(fsys, modDir); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("reading kernel modules: %w", err)
	default:
		defer f.Close()
		if idx, err = parseDep(f); err != nil {
			return nil, fmt.Errorf("%s: %w", depFile, err)
		}
		idx.source = depFile
	}
	for _, opt := range []struct {
		name  string
		parse func(io.Reader, *index) error
	}{{"modules.softdep", parseSoftdep}, {"modules.alias", parseAlias}} {
		f, err := fsys.Open(path.Join(modDir, opt.name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // optional: without it, no soft dependencies
		}
		if err != nil {
			return nil, fmt.Errorf("reading kernel modules: %w", err)
		}
		err = opt.parse(f, idx)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path.Join(modDir, opt.name), err)
		}
	}
	builtinFile := path.Join(modDir, "modules.builtin")
	bf, err := fsys.Open(builtinFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Kernels without it are long gone, but a missing list only means
		// that a built-in name will be reported as not found.
	case err != nil:
		return nil, fmt.Errorf("reading kernel modules: %w", err)
	default:
		defer bf.Close()
		if err := parseBuiltin(bf, idx.builtin); err != nil {
			return nil, fmt.Errorf("%s: %w", builtinFile, err)
		}
	}
	return idx, nil
}

// maxLine bounds one line of modules.dep; the longest in Debian 12's are a
// few KB.
const maxLine = 1 << 20

// parseDep reads modules.dep: one line per module, "path: dep-path ...".
// A module listed twice keeps its first line, as modprobe does.
func parseDep(r io.Reader) (*index, error) {
	idx := newIndex()
	type pending struct {
		m    *Module
		deps []string
		line int
	}
	var all []pending
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		p, deps, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: no ':' after the module path", n)
		}
		p = strings.TrimSpace(p)
		if err := checkPath(p); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		depPaths := strings.Fields(deps)
		for _, d := range depPaths {
			if err := checkPath(d); err != nil {
				return nil, fmt.Errorf("line %d: dependency: %w", n, err)
			}
		}
		if _, dup := idx.byPath[p]; dup {
			continue
		}
		m := &Module{Name: Name(p), Path: p}
		idx.byPath[p] = m
		if _, dup := idx.byName[m.Name]; !dup {
			idx.byName[m.Name] = m
		}
		all = append(all, pending{m, depPaths, n})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Dependencies are given by path; each must have its own line.
	for _, pd := range all {
		for _, d := range pd.deps {
			dm, ok := idx.byPath[d]
			if !ok {
				return nil, fmt.Errorf("line %d: %s needs %s, which has no line of its own", pd.line, pd.m.Path, d)
			}
			pd.m.Deps = append(pd.m.Deps, dm.Name)
		}
	}
	return idx, nil
}

// parseBuiltin reads modules.builtin: one path per line of a module that
// was built into the kernel.
func parseBuiltin(r io.Reader, into map[string]bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if err := checkPath(line); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		into[Name(line)] = true
	}
	return sc.Err()
}

// checkPath accepts a module path that stays inside the modules directory:
// relative, no "..", ending in a module suffix. (Very old depmod wrote
// absolute paths; no kernel keel can boot has those.)
func checkPath(p string) error {
	if !isModuleFile(p) {
		return fmt.Errorf("%q is not a module file (.ko, .ko.xz, .ko.zst, .ko.gz)", p)
	}
	if !filepath.IsLocal(p) || strings.Contains(p, "\\") || path.Clean(p) != p {
		return fmt.Errorf("module path %q is not a clean path inside the modules directory", p)
	}
	return nil
}

// parseSoftdep reads modules.softdep lines "softdep MODULE pre: A B post: C".
// Only pre-dependencies matter for loading a module; names before any
// "pre:" or "post:" count as pre, as modprobe reads them.
func parseSoftdep(r io.Reader, idx *index) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "softdep" {
			continue
		}
		mod, pre := Name(f[1]), true
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				pre = true
			case "post:":
				pre = false
			default:
				if pre {
					idx.softPre[mod] = append(idx.softPre[mod], w)
				}
			}
		}
	}
	return sc.Err()
}

// parseAlias reads modules.alias lines "alias ALIAS MODULE", keeping the
// file's order, which is the order modprobe loads an alias's modules in.
func parseAlias(r io.Reader, idx *index) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "alias" {
			continue
		}
		idx.aliases[f[1]] = append(idx.aliases[f[1]], Name(f[2]))
	}
	return sc.Err()
}

// resolveSoft turns a soft dependency (a module name or an alias) into the
// loadable modules it names.
func (idx *index) resolveSoft(name string) ([]string, error) {
	if _, ok := idx.byName[Name(name)]; ok {
		return []string{Name(name)}, nil
	}
	if idx.loadAliases != nil {
		load := idx.loadAliases
		idx.loadAliases = nil
		if err := load(); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, m := range idx.aliases[name] {
		if _, ok := idx.byName[m]; ok && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}
