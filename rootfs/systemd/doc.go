// Package systemd works on systemd unit files inside a rootfs.Tree: it
// finds units in the tree's unit search path, reads their [Install]
// sections, and enables them the way `systemctl --root=DIR enable` does,
// by writing the same symlinks under /etc/systemd/system, without running
// systemctl and without touching the build host.
//
// The search path and the link targets are those of Debian 12's systemd
// (252), whose system unit path is /etc/systemd/system,
// /usr/local/lib/systemd/system, /lib/systemd/system,
// /usr/lib/systemd/system in that order. A link points at the unit file by
// the search-path directory it was found in, so on a merged-/usr tree (/lib
// a link to usr/lib) ssh.service is enabled as
//
//	/etc/systemd/system/multi-user.target.wants/ssh.service → /lib/systemd/system/ssh.service
//
// exactly as systemctl writes it. Symlinks are followed within the tree,
// never on the host.
//
// Supported [Install] keys: WantedBy=, RequiredBy=, UpheldBy= (written as
// .upholds links as newer systemd does; 252 ignores it), Alias=, Also=,
// DefaultInstance=, with the specifiers %n %N %p %i %j and %%. Templates
// are enabled through DefaultInstance= (getty@.service →
// getty.target.wants/getty@tty1.service) or by naming an instance
// (getty@ttyS0.service). Presets (*.preset files) are read by Presets and
// applied by Preset, as `systemctl preset --preset-mode=enable-only` does
// for Debian's deb-systemd-helper.
//
// Every entry written is root-owned with the caller's mtime: symlinks
// 0777, directories 0755, unit files 0644.
package systemd
