package profiles

import "time"

// Version is the profile schema version this package reads.
const Version = 1

// Default values filled in by Load for fields a profile leaves out.
const (
	DefaultArch        = "x86_64"
	DefaultLoader      = "systemd-boot"
	DefaultESPSize     = 256 * MiB
	DefaultSlotSize    = 1 * GiB
	DefaultDataSize    = 256 * MiB
	DefaultCompression = "zstd"
	DefaultRestart     = "always"
	DefaultTries       = 3
	DefaultGrace       = Duration(10 * time.Second)
	DefaultFileMode    = FileMode(0o644)
	DefaultShell       = "/bin/sh"
)

// defaultLevels is the squashfs compression level used when
// disk.squashfs.level is left out, per compressor; levels are the accepted
// ones, the same as rootfs/squashfs.Levels (a test checks), which refuses
// levels that would mean the same as another. zstd 3 is keel's writer
// default (its pure-Go encoder gains little above it for much more time);
// xz 6 and gzip 9 are mksquashfs's.
var (
	defaultLevels = map[string]int{"zstd": 3, "xz": 6, "gzip": 9}
	levels        = map[string][]int{"zstd": {1, 3, 7, 11}, "xz": {6}, "gzip": {1, 2, 3, 4, 5, 6, 7, 8, 9}}
)

// Profile is a loaded, merged, defaulted and validated profile.
type Profile struct {
	Keel       int    `yaml:"keel" enum:"1" doc:"Profile schema version. Only 1 exists; left out means 1."`
	Name       string `yaml:"name" required:"true" doc:"Image name: lowercase letters, digits, '.', '_', '-'. Becomes IMAGE_ID in os-release."`
	Version    string `yaml:"version" required:"true" doc:"Image version, e.g. 1.4.0. Becomes IMAGE_VERSION in os-release and the boot entry title."`
	Arch       string `yaml:"arch" enum:"x86_64,aarch64" doc:"Target architecture. Default x86_64. aarch64 images boot by UEFI (e.g. QEMU virt with AAVMF); they take no boot.uki, boot.stub or disk.verity yet."`
	Compatible string `yaml:"compatible" doc:"Update bundles are only installed on images with the same compatible string. Default: name."`
	// After Load, Include holds the loaded file's own includes, absolute;
	// Files lists every file merged.
	Include  []string  `yaml:"include" keel:"path" doc:"Profile files merged before this one, in order, relative to this file. Later wins for scalars, mappings are merged, lists are appended."`
	Kernel   Kernel    `yaml:"kernel" required:"true" doc:"The kernel to boot and the modules its initrd carries."`
	Debian   Debian    `yaml:"debian" doc:"The Debian repository that packages (and kernel.package) come from."`
	Packages []string  `yaml:"packages" doc:"Debian packages installed first, with their dependencies (Depends, Pre-Depends; not Recommends), from debian's repository; name or name=version."`
	Sources  []Source  `yaml:"sources" doc:"What goes into the root filesystem, applied in order after packages. Each item is exactly one of image, dir or file."`
	Users    []User    `yaml:"users" doc:"Users written to /etc/passwd and /etc/shadow. root (uid 0) exists even when not listed."`
	Groups   []Group   `yaml:"groups" doc:"Groups written to /etc/group. root (gid 0) exists even when not listed."`
	Hostname string    `yaml:"hostname" doc:"Written to /etc/hostname. Default: name."`
	Services []Service `yaml:"services" doc:"The image's services: run by keel-init's supervisor, or, in an image with systemd, written as systemd units (NAME.service) and enabled."`
	Network  []Network `yaml:"network" doc:"Network interfaces, configured through systemd-networkd (images with systemd and systemd-networkd only)."`
	Timezone string    `yaml:"timezone" doc:"Time zone, e.g. Europe/Berlin (needs the tzdata package): /etc/localtime and /etc/timezone. Default UTC."`
	Locale   string    `yaml:"locale" doc:"LANG for the whole system, e.g. C.UTF-8 (built into glibc) or en_US.UTF-8 (needs locales-all): /etc/locale.conf and /etc/default/locale."`
	Boot     Boot      `yaml:"boot" doc:"The boot loader."`
	Disk     Disk      `yaml:"disk" doc:"Disk image layout."`
	Update   Update    `yaml:"update" doc:"How updates are tried, judged and trusted."`

	// Files are the absolute paths of every profile file that was merged,
	// in merge order, the loaded file last. A build that caches on the
	// profile hashes these.
	Files []string `yaml:"-"`

	pos map[string]Pos // field path -> where its value was written
}

// Kernel names the kernel: a local file, a path inside an OCI image, or a
// Debian package.
type Kernel struct {
	Package string   `yaml:"package" doc:"Debian package of the kernel, e.g. linux-image-amd64: its vmlinuz and modules are used, modules.dep computed by keel. Exactly one of package, file and image."`
	File    string   `yaml:"file" keel:"path" doc:"Local path of the kernel (vmlinuz). Exactly one of package, file and image."`
	Image   string   `yaml:"image" keel:"ref" doc:"OCI image reference holding the kernel, e.g. docker://example.org/kernel:6.1 or oci:./kernel:6.1. Needs path."`
	Path    string   `yaml:"path" doc:"Absolute path of the kernel inside image, e.g. /boot/vmlinuz."`
	Modules []string `yaml:"modules" doc:"Kernel modules loaded by the initrd (dependencies are added from modules.dep). Duplicates are dropped."`
	Cmdline string   `yaml:"cmdline" doc:"Extra kernel command line. root= and keel.slot= are set by keel."`
	// InitrdCompression is how the initrd is compressed; both formats are
	// decoded by the kernel itself (xz with a CRC32 check).
	InitrdCompression string `yaml:"initrd_compression" enum:"xz,zstd" doc:"How the initrd is compressed: xz (default, CRC32 check) or zstd."`
}

// Source is one item of sources: exactly one of Image, Dir or File is set.
type Source struct {
	Image string `yaml:"image" keel:"ref" doc:"OCI image reference whose layers are applied: docker://, oci:, oci-archive:, docker-archive:, dir:; a bare name means docker://."`
	Dir   string `yaml:"dir" keel:"path" doc:"Local directory copied into the image (ownership and modes as found, so usually from a build tree)."`
	To    string `yaml:"to" doc:"With dir: absolute destination in the image. Default /."`

	File    string   `yaml:"file" doc:"Absolute destination path of a single file in the image. Needs content or source."`
	Content string   `yaml:"content" doc:"With file: the file's content."`
	Source  string   `yaml:"source" keel:"path" doc:"With file: local file whose content is copied."`
	Mode    FileMode `yaml:"mode" doc:"With file: permission bits, always octal (\"0755\", 0755, 755, 0o755 all mean rwxr-xr-x). Default 0644."`
	UID     int      `yaml:"uid" doc:"With file: owner uid. Default 0."`
	GID     int      `yaml:"gid" doc:"With file: owner gid. Default 0."`
}

// Kind says which of image, dir and file a source is: "image", "dir" or "file".
func (s *Source) Kind() string {
	switch {
	case s.Image != "":
		return "image"
	case s.Dir != "":
		return "dir"
	}
	return "file"
}

// User is one account.
type User struct {
	Name              string   `yaml:"name" required:"true" doc:"Login name."`
	UID               int      `yaml:"uid" required:"true" doc:"User id."`
	GID               int      `yaml:"gid" doc:"Primary group id. Default: uid (a group named after the user is implied when no listed group has it)."`
	Groups            []string `yaml:"groups" doc:"Supplementary groups, by name; each must be listed in groups (or be root)."`
	Home              string   `yaml:"home" doc:"Home directory. Default /root for root, /home/NAME otherwise."`
	Shell             string   `yaml:"shell" doc:"Login shell. Default /bin/sh."`
	Password          string   `yaml:"password" doc:"crypt(3) hash (\"$6$...\", \"$y$...\"), or \"!\" / \"*\" for none. Plain text is refused. Default: locked."`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys" doc:"Lines written to the user's ~/.ssh/authorized_keys."`
}

// Group is one group.
type Group struct {
	Name string `yaml:"name" required:"true" doc:"Group name."`
	GID  int    `yaml:"gid" required:"true" doc:"Group id."`
}

// Service is one process supervised by keel-init. Its fields map one to one
// onto keel/rootfs/services.Service, the file keel-init reads.
type Service struct {
	Name    string            `yaml:"name" required:"true" doc:"Service name, unique."`
	Command []string          `yaml:"command" required:"true" doc:"argv of the process; the first element is an absolute path or looked up in PATH."`
	User    string            `yaml:"user" doc:"User it runs as: root or a name listed in users. Default root."`
	Restart string            `yaml:"restart" enum:"always,on-failure,never" doc:"When to restart it after it exits. Default always."`
	Env     map[string]string `yaml:"env" doc:"Environment variables, added to a minimal PATH, HOME, USER, LOGNAME (overriding them)."`
	WorkDir string            `yaml:"working_dir" doc:"Absolute directory it starts in. Default: the user's home if it exists, else /."`
	OnExit  string            `yaml:"on_exit" enum:"poweroff,reboot" doc:"What the system does once the service has exited for good (not restarted by its policy). Default: nothing. A test image runs its test with restart: never, on_exit: poweroff."`
}

// Boot is the boot loader put on the ESP.
type Boot struct {
	Loader string `yaml:"loader" enum:"systemd-boot,grub,u-boot" doc:"The boot loader: systemd-boot (UEFI; Type #1 entries counted by the loader), grub (x86_64, UEFI and BIOS on one disk: a fixed grub.cfg and a grubenv try counter) or u-boot (aarch64 boards booted by U-Boot without UEFI: a boot script keel compiles and a U-Boot environment file with the try counters). Default systemd-boot. Its files come from Debian's packages (systemd-boot-efi; grub-efi-amd64-bin and grub-pc-bin) when the profile has Debian packages, else from the build host; U-Boot is the board's firmware and puts no file on the disk but the script."`
	EFI    string `yaml:"efi" keel:"path" doc:"Local path of the systemd-boot EFI binary (systemd-bootx64.efi), instead of the package's or the build host's."`
	UKI    bool   `yaml:"uki" doc:"Boot each slot from one unified kernel image (kernel, initrd, command line, os-release in one PE file on systemd's stub), the file Secure Boot signs. On whenever disk.verity is, or keel build signs for Secure Boot."`
	Stub   string `yaml:"stub" keel:"path" doc:"Local path of systemd's UKI stub (linuxx64.efi.stub). Default: from the same place as the loader."`
}

// Debian is the repository packages come from. Mirror and keyring default
// to the build host's apt configuration for the suite.
type Debian struct {
	Suite        string   `yaml:"suite" doc:"Suite or codename, e.g. bookworm. Required with packages or kernel.package."`
	Components   []string `yaml:"components" doc:"Archive components. Default [main]."`
	Architecture string   `yaml:"architecture" doc:"Debian architecture. Default: from arch (amd64 for x86_64, arm64 for aarch64)."`
	Mirror       string   `yaml:"mirror" doc:"Repository URL (http://, https://, file://). Default: keel build --mirror, else $KEEL_DEBIAN_MIRROR, else the build host's apt source for the suite."`
	Keyring      string   `yaml:"keyring" keel:"path" doc:"OpenPGP keyring (binary .gpg or armored .asc) that signs the repository's InRelease. Default: --keyring, else $KEEL_DEBIAN_KEYRING, else the host apt source's Signed-By, else Debian's archive keyring."`
	Base         string   `yaml:"base" enum:"none,essential,required,important" doc:"A base system added to packages: essential (Essential: yes packages), required (Priority: required, as a minimal Debian) or important. Default none: only packages and their dependencies."`
}

// Network configures one network interface (systemd-networkd).
type Network struct {
	Match   string   `yaml:"match" required:"true" doc:"Interface name or glob, e.g. en* or eth0."`
	DHCP    bool     `yaml:"dhcp" doc:"Get addresses, gateway and DNS by DHCP (IPv4 and IPv6)."`
	Address []string `yaml:"address" doc:"Static addresses with prefix length, e.g. 192.168.1.10/24."`
	Gateway string   `yaml:"gateway" doc:"Default gateway for static addresses."`
	DNS     []string `yaml:"dns" doc:"DNS servers."`
}

// Disk is the disk image layout: sizes of the whole disk and its partitions.
// Sizes are written "2GiB", "512M", "64MiB" or in bytes (see Size).
type Disk struct {
	Size     Size     `yaml:"size" doc:"Total disk size. Default: just big enough, esp + 2 x slot + data, each rounded up to a whole MiB, + 2MiB for the partition tables. Must hold all of them."`
	ESP      Size     `yaml:"esp" doc:"EFI system partition size (FAT32): at least 34089472 bytes (33MiB will do), under 2TiB. Default 256MiB."`
	Slot     Size     `yaml:"slot" doc:"Size of each of the two root slots (A and B). Default 1GiB."`
	Data     Size     `yaml:"data" doc:"Persistent data partition (ext4, mounted at /var): at least 8MiB, under 16TiB. Default 256MiB."`
	Squashfs Squashfs `yaml:"squashfs" doc:"How the root squashfs is compressed."`
	Verity   bool     `yaml:"verity" doc:"Protect each root slot with dm-verity: the squashfs is followed in its slot by its hash tree, and the root hash goes on the (signed) kernel command line of the slot's unified kernel image, so a changed block reads as an I/O error. Implies boot.uki."`
}

// Squashfs says how the root squashfs is compressed.
type Squashfs struct {
	Compression string `yaml:"compression" enum:"zstd,xz,gzip" doc:"Compressor. Default zstd."`
	Level       int    `yaml:"level" doc:"Compression level: zstd 1, 3, 7 or 11 (default 3), xz 6, gzip 1-9 (default 9); each gives a different image."`
}

// Update says how an installed update is tried, judged and trusted.
type Update struct {
	Tries  int      `yaml:"tries" doc:"Boots an update gets to become healthy before the boot loader falls back. Default 3."`
	Health Health   `yaml:"health" doc:"When a boot counts as healthy."`
	Keys   []string `yaml:"keys" keel:"path" doc:"ed25519 public keys whose signatures on update bundles are trusted."`

	Source   string   `yaml:"source" doc:"Where the device looks for updates by itself: oci://REGISTRY/REPO:TAG (a bundle pushed with keel push, the tag a channel) or https://HOST/PATH/bundle.keel. The image then runs keelctl poll as a service. Default: none, updates are installed by hand."`
	Interval Duration `yaml:"interval" doc:"With source: time between checks, at least 1m; each wait gets up to a tenth more at random, so a fleet spreads out. Default 6h."`
	Reboot   string   `yaml:"reboot" doc:"With source: when to reboot into an installed update: immediate, manual (never by itself), or window HH:MM-HH:MM (local time). Default manual."`
	CA       string   `yaml:"ca" keel:"path" doc:"With source: PEM certificates to trust for the source's TLS, besides the image's own; baked into /etc/keel/update-ca.pem."`
	Auth     string   `yaml:"auth" keel:"path" doc:"With source: registry credentials in docker's config.json format, baked into /etc/keel/registry-auth.json (mode 0600): a credential for pulling only."`
	Rate     Size     `yaml:"rate" doc:"With source: the most bytes per second a download may take, e.g. 1MiB. Default: no cap."`
	Insecure bool     `yaml:"insecure" doc:"With source: allow a plain http:// source (the bundle's signature is still checked). For closed networks and tests."`
}

// Health says when a boot counts as healthy.
type Health struct {
	Require []string `yaml:"require" doc:"Services that must stay up: names listed in services, or, in an image with systemd, unit names (ssh.service). Default: all services."`
	Grace   Duration `yaml:"grace" doc:"How long the required services must stay up, e.g. 10s, 1m30s. Default 10s."`
}
