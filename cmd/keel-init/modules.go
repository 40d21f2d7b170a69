package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// moduleListPath is the initrd's list of kernel modules to load, written at
// build time by rootfs/kmod in dependency order (dependencies first).
const moduleListPath = "/etc/keel/modules"

// moduleLoad is one line of the module list.
type moduleLoad struct {
	Path   string // absolute path of the .ko (possibly .ko.xz/.ko.zst/.ko.gz)
	Params string // module parameters, "" for none
}

// parseModuleList reads the list: one module per line, a path absolute or
// relative to /lib/modules/<release>/, optionally followed by whitespace and
// module parameters ("foo.ko debug=1"). Blank lines and lines starting with
// '#' are skipped.
func parseModuleList(r io.Reader, release string) ([]moduleLoad, error) {
	var mods []moduleLoad
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		p, params := fields[0], strings.Join(fields[1:], " ")
		if !strings.Contains(p, ".ko") {
			return nil, fmt.Errorf("%s:%d: %q is not a module file (.ko)", moduleListPath, n, p)
		}
		if !path.IsAbs(p) {
			p = path.Join("/lib/modules", release, p)
		}
		mods = append(mods, moduleLoad{Path: path.Clean(p), Params: params})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", moduleListPath, err)
	}
	return mods, nil
}

// isCompressedModule says whether the kernel must decompress the file
// (finit_module's MODULE_INIT_COMPRESSED_FILE, kernel 6.1+).
func isCompressedModule(p string) bool {
	return strings.HasSuffix(p, ".ko.xz") || strings.HasSuffix(p, ".ko.zst") || strings.HasSuffix(p, ".ko.gz")
}

// errModuleLoaded is what the loader returns for a module already in the
// kernel (EEXIST): not a failure.
var errModuleLoaded = errors.New("already loaded")

// loadModules loads each module in order with load, carrying on past
// failures so one bad module does not hide the others; it returns how many
// failed and logs each. A failed module matters only if the root or data
// partition then does not show up, and that error says what is missing.
func loadModules(mods []moduleLoad, load func(moduleLoad) error, logf func(string, ...any)) (failed int) {
	for _, m := range mods {
		err := load(m)
		switch {
		case err == nil:
		case errors.Is(err, errModuleLoaded):
		default:
			logf("loading module %s: %v", m.Path, err)
			failed++
		}
	}
	return failed
}
