// Package postinst makes unpacked Debian packages a working system
// without running their maintainer scripts.
//
// # Decision
//
// keel builds a root filesystem as a tree in memory, with no root
// privileges and no chroot, possibly for another architecture. Running
// preinst and postinst scripts would need all three (an unprivileged user
// namespace, a chroot, and an emulator for foreign binaries), would make
// the result depend on the build host, and would bake per-machine state
// into the read-only root: ssh host keys, a random /etc/machine-id,
// /var/lib/dbus/machine-id. So keel does not run them. Instead it applies
// their declarative effects in Go, deterministically (same packages, same
// epoch → same tree), plus a short table of per-package recipes for the
// few scripts that do something an image needs and that no generic
// pattern covers. Every command of a script that keel does not apply is
// reported, so a user sees, with `keel build -v`, what was skipped.
//
// # Reading the scripts
//
// The scripts are parsed as POSIX shell (shell.go) and walked as dpkg
// would run them on a fresh install in a chroot (eval.go): preinst with
// "install", postinst with "configure" and an empty previous version,
// DPKG_ROOT empty, no systemd running (/run empty). Conditions are
// evaluated where they can be — [ "$1" = configure ], [ -z "$2" ], dpkg
// --compare-versions "$2" lt X, file tests answered by the tree as
// unpacked — so upgrade-only and trigger-only branches are left out;
// functions are followed into with their arguments, and shell libraries
// sourced from the tree are read. Each command is recorded with its
// words, where known, and whether it runs certainly or only under a
// condition keel cannot decide (command output, debconf answers).
//
// # Effects, in this order
//
//  1. dpkg's database (dpkgdb.go): status, info/*.list, conffiles,
//     md5sums, the scripts themselves, triggers, arch, empty available,
//     diversions and statoverride, so dpkg-query and apt work at runtime.
//  2. Accounts (accounts.go, sysusers.go, adduser.go): base-passwd's
//     master files, then sysusers.d, then adduser/addgroup/useradd/
//     groupadd calls of the scripts; /etc/shadow and /etc/gshadow in
//     Debian's formats.
//  3. update-alternatives --install (alternatives.go).
//  4. dpkg-statoverride --add (statoverride.go).
//  5. systemd units (units.go): deb-systemd-helper enable through
//     presets, systemctl enable where certainly run on a new install,
//     with keel/rootfs/systemd.
//  6. pam-auth-update (pam.go): /etc/pam.d/common-*.
//  7. Plain file commands certainly run with known arguments (files.go):
//     mkdir, touch, ln, cp, chmod, chown, rm, rmdir, ": > FILE".
//  8. Per-package recipes (recipes.go): sshd_config without host keys, an
//     empty machine-id, /etc/resolv.conf for systemd-resolved,
//     ca-certificates' bundle and links, the time zone, /etc/shells,
//     busybox's applet links (read from the binary, busybox.go).
//  9. The report (report.go).
//
// Commands that act on a running system (invoke-rc.d, deb-systemd-invoke,
// systemctl start) are ignored; those whose work the system does at boot
// or an image does not need (ldconfig, systemd-tmpfiles, debconf,
// triggers) are named once, together. Everything else not applied is a
// warning naming the script.
//
// Reading the scripts happens before any effect, against the tree as
// unpacked; the effects then run in the order above, not interleaved
// package by package as dpkg would. Ids therefore differ from a dpkg run
// (sysusers.d users come before adduser's), but never between two keel
// runs.
package postinst
