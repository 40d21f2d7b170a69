package buildcache

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Recorder lists the host files a build reads through file systems it
// hands out, so that an entry can say which files it depends on beyond its
// key (Put's deps).
type Recorder struct {
	mu    sync.Mutex
	paths []string
}

// FS is the host directory root as an fs.FS (os.DirFS's) whose opens are
// recorded, as host paths.
func (r *Recorder) FS(root string) fs.FS { return recFS{r: r, fs: os.DirFS(root), root: root} }

// Host opens host paths as given (relative or absolute), recording each.
func (r *Recorder) Host() fs.FS { return recFS{r: r} }

// Paths are the host paths opened, sorted, each once.
func (r *Recorder) Paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := slices.Clone(r.paths)
	slices.Sort(p)
	return slices.Compact(p)
}

func (r *Recorder) add(p string) {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	r.mu.Lock()
	r.paths = append(r.paths, p)
	r.mu.Unlock()
}

type recFS struct {
	r    *Recorder
	fs   fs.FS // nil: host paths as given
	root string
}

func (f recFS) Open(name string) (fs.File, error) {
	if f.fs == nil {
		f.r.add(name)
		return os.Open(name)
	}
	f.r.add(filepath.Join(f.root, name))
	return f.fs.Open(name)
}
