// Package debfetch fetches Debian binary packages into a cache outside the
// repository and unpacks them there, so that builds and tests can take a
// Debian kernel and a static busybox as inputs.
//
// It drives the host's own apt: `apt-cache policy` and `apt-cache show`
// choose the exact version, `apt-get download` fetches the .deb from the
// mirrors the host is configured with (keel names none), and `dpkg-deb -x`
// unpacks it. apt-get download needs no root and installs nothing.
//
// The cache is keyed by exact version, so once a version is unpacked it is
// never downloaded again; a newer candidate (after an apt-get update) is a
// new entry beside the old one. Layout, under the cache directory:
//
//	debs/<name>_<version>_<arch>.deb     the downloaded package
//	unpacked/<name>_<version>/           its contents, as dpkg-deb -x leaves them
//
// with ':' in versions (epochs) written "%3a", as apt names .deb files.
// Entries appear by rename, complete or not at all, and a lock file lets
// several processes (parallel test binaries) share one cache.
package debfetch
