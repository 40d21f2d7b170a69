// Package factory is the factory copy of /var: what an image puts under
// /var, kept in the read-only root so that the data partition mounted on
// /var at boot does not hide it.
//
// At build time Split moves the tree's /var to Dir and leaves /var an empty
// mount point. At every boot, after the data partition is mounted and
// before the rootfs's init starts, Populate creates on /var whatever of the
// factory copy is missing there and never changes what exists, as
// systemd-tmpfiles' "C" lines do but recursively: a new disk gets the whole
// factory state, an update adds its new entries, and the user's files,
// directories and symlinks stay as they are, even where their type differs
// from the factory's.
//
// Dir follows systemd's convention for factory files
// (/usr/share/factory/etc is systemd-tmpfiles' source for /etc).
package factory

// Dir is where the factory copy of /var lives in the image.
const Dir = "/usr/share/factory/var"

// Var is the directory the factory copy is for: the data partition's
// mount point.
const Var = "/var"
