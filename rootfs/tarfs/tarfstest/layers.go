package tarfstest

import (
	"archive/tar"
	"testing"
)

// Capability is a security.capability xattr value (cap_net_raw), binary.
const Capability = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// Layers returns the uncompressed tars of the image most layer tests apply:
// three layers exercising every entry type, ownership, setuid and sticky
// bits, xattrs, hard links within and across layers, implicit parents,
// whiteouts and an opaque directory, with the ordering cases inside a layer
// that the OCI spec settles (a layer's whiteouts never hide its own
// entries). Applied in order with whiteouts, they give LayersTree.
func Layers(t testing.TB) [][]byte {
	l1 := Tar(t,
		Dir("./", 0o755),
		Dir("etc/", 0o755),
		File("etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n"),
		Dir("usr/bin/", 0o755), // "usr/" omitted: created implicitly
		File("usr/bin/tool", 0o4755, "#!tool\n"),
		Hardlink("usr/bin/tool-alias", "usr/bin/tool"),
		Xattr(File("usr/bin/ping", 0o755, "ping"), "security.capability", Capability),
		Hardlink("usr/bin/ping6", "usr/bin/ping"),
		Symlink("bin", "usr/bin"),
		Device(tar.TypeChar, "dev/null", 0o666, 1, 3),
		Owned(Device(tar.TypeBlock, "dev/sda", 0o660, 8, 0), 0, 6),
		Dir("tmp/", 0o1777),
		Fifo("run/initctl", 0o600),
		Dir("opt/app/", 0o755),
		File("opt/app/a", 0o644, "A"),
		File("opt/app/sub/c", 0o2644, "C"),
		File("var/lib/gone", 0o644, "gone"),
		File("var/lib/stay", 0o644, "stay"),
		Owned(Mtime(File("home/user/.profile", 0o600, "old\n"), 1600000000), 1000, 1000),
		Dir("srv/", 0o755),
		File("srv/keep", 0o644, "lower keep"),
		File("empty", 0o644, ""),
	)
	l2 := Tar(t,
		Whiteout("var/lib/.wh.gone"),
		File("opt/app/new", 0o644, "N"),
		Whiteout("opt/app/.wh..wh..opq"), // after "new": new survives
		Hardlink("etc/passwd-", "etc/passwd"),
		File("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"), // passwd- keeps the old inode
		Owned(Mtime(File("srv/keep", 0o600, "upper keep"), 1600000000), 33, 33),
		Whiteout("srv/.wh.keep"), // same layer: keep survives
		Whiteout("home/user/.wh..profile"),
		Owned(File("home/user/.profile", 0o640, "new\n"), 1000, 1000), // re-added after its whiteout
		Dir(".wh..wh.plnk/", 0o700),                                   // aufs bookkeeping, skipped
		File(".wh..wh.plnk/12.34", 0o644, "x"),
	)
	l3 := Tar(t,
		Dir("etc/", 0o750), // restated: children stay
		File("usr/bin/tool", 0o755, "#!tool v2\n"),
		Whiteout("dev/.wh.sda"),
		Dir("var/lib/stay/", 0o700), // a directory replaces a file
		Symlink("srv/keep", "/etc/passwd"),
	)
	return [][]byte{l1, l2, l3}
}

// LayersTree is Dump of the tree Layers gives.
var LayersTree = []string{
	`/ dir 0755 0:0`,
	`/bin sym 0777 0:0 -> usr/bin`,
	`/dev dir 0755 0:0 t=0`,
	`/dev/null chr 0666 0:0 1:3`,
	`/empty file 0644 0:0 ""`,
	`/etc dir 0750 0:0`,
	`/etc/passwd file 0644 0:0 "root:x:0:0:root:/root:/bin/sh\n"`,
	`/etc/passwd- file 0644 0:0 "root:x:0:0::/root:/bin/sh\n"`,
	`/home dir 0755 0:0 t=0`,
	`/home/user dir 0755 0:0 t=0`,
	`/home/user/.profile file 0640 1000:1000 "new\n"`,
	`/opt dir 0755 0:0 t=0`,
	`/opt/app dir 0755 0:0`,
	`/opt/app/new file 0644 0:0 "N"`,
	`/run dir 0755 0:0 t=0`,
	`/run/initctl fifo 0600 0:0`,
	`/srv dir 0755 0:0`,
	`/srv/keep sym 0777 0:0 -> /etc/passwd`,
	`/tmp dir 1777 0:0`,
	`/usr dir 0755 0:0 t=0`,
	`/usr/bin dir 0755 0:0`,
	`/usr/bin/ping file 0755 0:0 "ping" x:security.capability="\x01\x00\x00\x02\x00 \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"`,
	`/usr/bin/ping6 file 0755 0:0 link=/usr/bin/ping "ping" x:security.capability="\x01\x00\x00\x02\x00 \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"`,
	`/usr/bin/tool file 0755 0:0 "#!tool v2\n"`,
	`/usr/bin/tool-alias file 4755 0:0 "#!tool\n"`,
	`/var dir 0755 0:0 t=0`,
	`/var/lib dir 0755 0:0 t=0`,
	`/var/lib/stay dir 0700 0:0`,
}
