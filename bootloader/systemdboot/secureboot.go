package systemdboot

import (
	"fmt"
	"keel/bootloader/secureboot"
	"path"
	"slices"
)

// EnrollFiles are the authenticated variables systemd-boot enrolls from a
// keys directory (secureboot.AuthFiles).
var EnrollFiles = secureboot.AuthFiles

// Sign replaces the loader binary with what sign makes of it (an
// Authenticode signature, for Secure Boot).
func (l *Loader) Sign(sign func([]byte) ([]byte, error)) error {
	b, err := sign(l.efi)
	if err != nil {
		return err
	}
	if len(b) < 2 || b[0] != 'M' || b[1] != 'Z' {
		return fmt.Errorf("signed loader is not a PE binary")
	}
	l.efi = b
	return nil
}

// EnrollDir is the keys directory systemd-boot 252 enrolls from by itself
// with "secure-boot-enroll force"; any other directory under /loader/keys
// only becomes a menu entry, which nobody picks on a headless device.
const EnrollDir = "/loader/keys/auto"

// EnrollKeys makes Install write files (EnrollFiles) to EnrollDir and
// "secure-boot-enroll force" to loader.conf: systemd-boot (252 and later)
// then enrolls them on a machine in setup mode (after a 15 s countdown
// that a key press aborts on real hardware; at once in a VM) and resets
// it; from the next boot Secure Boot enforces them. On a machine not in
// setup mode it does nothing.
func (l *Loader) EnrollKeys(files map[string][]byte) {
	l.keys = files
}

// conf is loader.conf, with the enrollment line when keys are set.
func (l *Loader) conf() string {
	if l.keys == nil {
		return LoaderConf
	}
	return LoaderConf + "secure-boot-enroll force\n"
}

// installKeys writes the enrollment directory.
func (l *Loader) installKeys(esp interface {
	Mkdir(string) error
}, write func(p string, b []byte) error) error {
	if l.keys == nil {
		return nil
	}
	dir := EnrollDir
	for _, d := range []string{path.Dir(dir), dir} {
		if err := esp.Mkdir(d); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	names := make([]string, 0, len(l.keys))
	for n := range l.keys {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !slices.Contains(EnrollFiles, n) {
			return fmt.Errorf("enroll keys: unexpected file %s (want %v)", n, EnrollFiles)
		}
		if err := write(path.Join(dir, n), l.keys[n]); err != nil {
			return err
		}
	}
	return nil
}
