package profiles

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"keel/image/disk"
	"keel/rootfs/squashfs"
)

// head is a minimal valid profile; cases append to it, so their lines
// start at 4.
const head = "name: t\nversion: \"1\"\nkernel: {file: files/vmlinuz}\n"

// TestBadProfiles has one case per kind of error, with the exact text the
// user sees. The profile is parsed as testdata/p.yaml, so relative paths
// resolve in testdata/; TESTDATA in a wanted message stands for its
// absolute path.
func TestBadProfiles(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", head + "nmae: x\n", []string{
			"4:1: nmae: unknown field (known: keel, name, version, arch, compatible, include, kernel, debian, packages, sources, users, groups, hostname, services, network, timezone, locale, boot, disk, update)"}},
		{"unknown nested field", head + "disk:\n  slot_size: 2G\n", []string{
			"5:3: disk.slot_size: unknown field (known: size, esp, slot, data, squashfs, verity)"}},
		{"unknown field in list item", head + "users:\n  - name: a\n    uid: 1\n    login: /bin/sh\n", []string{
			"7:5: users[0].login: unknown field (known: name, uid, gid, groups, home, shell, password, ssh_authorized_keys)"}},
		{"list expected", head + "users: {name: a}\n", []string{
			"4:8: users: expected a list, got a mapping"}},
		{"mapping expected", head + "disk: 2G\n", []string{
			`4:7: disk: expected a mapping, got "2G"`}},
		{"string expected", head + "hostname: [a, b]\n", []string{
			"4:11: hostname: expected a string, got a list"}},
		{"integer expected", head + "users: [{name: a, uid: \"1000\"}]\nupdate: {tries: three}\n", []string{
			`4:24: users[0].uid: expected an integer, got "1000"`,
			`5:17: update.tries: expected an integer, got "three"`}},
		{"integer out of range", head + "users: [{name: a, uid: 99999999999}]\n", []string{
			"4:24: users[0].uid: 99999999999 is out of range (0-4294967294)"}},
		{"bad size", head + "disk:\n  slot: 12Q\n  esp: 0\n  data: 0.3K\n", []string{
			`5:9: disk.slot: "12Q" is not a size`,
			`6:8: disk.esp: "0": a size must be greater than zero`,
			`7:9: disk.data: "0.3K" is not a whole number of bytes`}},
		{"disk too small", head + "disk: {size: 1GiB, slot: 512M}\n", []string{
			"4:14: disk.size: 1GiB is too small: esp, two slots and data, each starting on a MiB boundary, and the two partition tables need at least 1573905KiB, say 1538MiB"}},
		// Each partition starts on a MiB boundary, so sizes just over a
		// MiB need more than their sum + 2MiB; the planner says how much.
		{"disk too small for unaligned partitions", head + "disk:\n  size: 337973248\n  esp: 64001KiB\n  slot: 100001KiB\n  data: 64001KiB\n", []string{
			"5:9: disk.size: 330052KiB is too small: esp, two slots and data, each starting on a MiB boundary, and the two partition tables need at least 330769KiB, say 324MiB"}},
		{"update policy without a source", head + "update: {interval: 1h, reboot: immediate}\n", []string{
			"4:20: update.interval: only means something with update.source",
			"4:32: update.reboot: only means something with update.source"}},
		{"update policy", head + "update:\n  source: ftp://x/y\n  interval: 10s\n  reboot: later\n", []string{
			`5:11: update.source: source "ftp://x/y": unknown scheme "ftp" (want oci or https)`,
			"5:11: update.source: a device that fetches updates needs update.keys to trust their signatures",
			"6:13: update.interval: 10s: at least 1m0s",
			`7:11: update.reboot: reboot "later": want immediate, manual or window HH:MM-HH:MM (local time, e.g. window 02:00-04:00)`}},
		{"esp too small for FAT32", head + "disk: {esp: 16MiB}\n", []string{
			"4:13: disk.esp: 16MiB is too small: FAT32 (65525 clusters) needs at least 34089472B, say 33MiB"}},
		{"partition sizes", head + "disk:\n  esp: 3TiB\n  slot: 1000\n  data: 4MiB\n", []string{
			"5:8: disk.esp: 3TiB is too large: FAT32 holds at most 2199023255040B",
			"6:9: disk.slot: 1000B is not a whole number of 512-byte sectors",
			"7:9: disk.data: 4MiB is too small: ext4 with a journal needs at least 8MiB"}},
		{"bad level", head + "disk:\n  squashfs: {compression: gzip, level: 12}\n", []string{
			"5:40: disk.squashfs.level: 12 is not a level of gzip: want one of 1, 2, 3, 4, 5, 6, 7, 8, 9"}},
		{"zstd level with no encoder of its own", head + "disk:\n  squashfs: {compression: zstd, level: 15}\n", []string{
			"5:40: disk.squashfs.level: 15 is not a level of zstd: want one of 1, 3, 7, 11"}},
		{"xz level", head + "disk:\n  squashfs: {compression: xz, level: 9}\n", []string{
			"5:38: disk.squashfs.level: 9 is not a level of xz: want one of 6"}},
		{"bad enum", head + "disk:\n  squashfs: {compression: lz4}\nservices: [{name: s, command: [x], restart: sometimes}]\n", []string{
			`5:27: disk.squashfs.compression: "lz4" is not one of zstd, xz, gzip`,
			`6:45: services[0].restart: "sometimes" is not one of always, on-failure, never`}},
		{"verity on aarch64", head + "arch: aarch64\ndisk: {verity: true}\n", []string{
			"5:16: disk.verity: a verity root, bound to a unified kernel image, is not supported for arch aarch64 yet (x86_64 only)"}},
		{"UKI on aarch64", head + "arch: aarch64\nboot: {uki: true, stub: files/vmlinuz}\n", []string{
			"5:13: boot.uki: unified kernel images are not supported for arch aarch64 yet (x86_64 only)",
			"5:25: boot.stub: unified kernel images are not supported for arch aarch64 yet (x86_64 only)"}},
		{"arch unknown", head + "arch: riscv64\n", []string{
			`4:7: arch: "riscv64" is not one of x86_64, aarch64`}},
		{"bad modes", head + "sources:\n  - {file: /a, content: x, mode: \"0789\"}\n  - {file: /b, content: x, mode: 17777}\n  - {file: /c, content: x, mode: true}\n", []string{
			`5:34: sources[0].mode: "0789" is not an octal mode`,
			`6:34: sources[1].mode: "17777" is not a mode: more than 07777`,
			`7:34: sources[2].mode: expected an octal mode like "0644", got a boolean (true)`}},
		{"missing kernel file", "name: t\nversion: \"1\"\nkernel:\n  file: files/nope\n", []string{
			"4:9: kernel.file: TESTDATA/files/nope: no such file"}},
		{"kernel file is a directory", "name: t\nversion: \"1\"\nkernel:\n  file: files\n", []string{
			"4:9: kernel.file: TESTDATA/files: is a directory, not a file"}},
		{"kernel alternatives", "name: t\nversion: \"1\"\nkernel: {file: files/vmlinuz, image: docker://k}\n", []string{
			"3:38: kernel.image: kernel.file and kernel.image are alternatives; give one"}},
		{"kernel image needs path", "name: t\nversion: \"1\"\nkernel: {image: docker://k}\n", []string{
			"3:9: kernel.path: required with kernel.image: the kernel's path inside the image"}},
		{"kernel needs something", "name: t\nversion: \"1\"\nkernel: {modules: [ext4]}\n", []string{
			"3:9: kernel: needs package, file or image"}},
		{"packages need a suite", head + "packages: [busybox-static]\n", []string{
			"4:11: packages: needs debian.suite (e.g. bookworm): the repository to take packages from"}},
		{"kernel package needs a suite", "name: t\nversion: \"1\"\nkernel: {package: linux-image-amd64}\n", []string{
			"3:19: kernel.package: needs debian.suite (e.g. bookworm): the repository to take packages from"}},
		{"kernel package and file", "name: t\nversion: \"1\"\ndebian: {suite: bookworm}\nkernel: {package: linux-image-amd64, file: files/vmlinuz}\n", []string{
			"4:44: kernel.file: kernel.package and kernel.file are alternatives; give one"}},
		{"bad packages", head + "debian: {suite: bookworm, mirror: \"ftp://m/debian\", base: all}\npackages: [Nginx, \"curl=\", \"vim=2:9.0-1\", \"xy=a b\"]\n", []string{
			`4:35: debian.mirror: "ftp://m/debian": want an http://, https:// or file:// URL`,
			`4:59: debian.base: "all" is not one of none, essential, required, important`,
			`5:12: packages[0]: "Nginx" is not a Debian package name (two or more of lowercase letters, digits, '+', '-', '.'; name=version to pin)`,
			`5:19: packages[1]: "" is not a Debian version`,
			`5:43: packages[3]: "a b" is not a Debian version`}},
		{"bad system settings", head + "timezone: ../etc/passwd\nlocale: \"en US\"\nnetwork:\n  - {match: \"en*\", address: [10.0.0.1], gateway: x, dns: [1.1.1.1, y]}\n  - {match: eth0}\n  - {match: eth1, dhcp: yes}\n", []string{
			`4:11: timezone: "../etc/passwd" is not a time zone name (like Europe/Berlin or UTC)`,
			`5:9: locale: "en US" is not a locale name (like C.UTF-8 or en_US.UTF-8)`,
			`7:30: network[0].address[0]: "10.0.0.1" is not an address with a prefix length (like 192.168.1.10/24)`,
			`7:50: network[0].gateway: "x" is not an IP address`,
			`7:68: network[0].dns[1]: "y" is not an IP address`,
			`8:5: network[1]: needs dhcp: true or an address`,
			`9:25: network[2].dhcp: expected true or false, got "yes"`}},
		{"kernel path only with image", "name: t\nversion: \"1\"\nkernel: {file: files/vmlinuz, path: /boot/x}\n", []string{
			"3:37: kernel.path: only with kernel.image"}},
		{"cmdline sets root", "name: t\nversion: \"1\"\nkernel: {file: files/vmlinuz, cmdline: \"quiet root=/dev/sda\"}\n", []string{
			"3:40: kernel.cmdline: root= is set by keel"}},
		{"bad module name", "name: t\nversion: \"1\"\nkernel: {file: files/vmlinuz, modules: [ext4, virtio blk]}\n", []string{
			`3:47: kernel.modules[1]: "virtio blk" is not a module name`}},
		{"required fields", "hostname: h\nusers: [{name: a}]\n", []string{
			"1:1: name: required field is missing",
			"1:1: version: required field is missing",
			"1:1: kernel: required field is missing",
			"2:9: users[0].uid: required field is missing"}},
		{"source needs a kind", head + "sources:\n  - {to: /x}\n", []string{
			"5:5: sources[0]: needs one of image, dir, file"}},
		{"source with two kinds", head + "sources:\n  - {dir: files/root, file: /x, content: y}\n", []string{
			"5:29: sources[0].file: dir and file are alternatives; give one per source"}},
		{"source fields of another kind", head + "sources:\n  - {dir: files/root, mode: \"0644\"}\n  - {file: /x, content: y, to: /z}\n", []string{
			"5:29: sources[0].mode: only with file",
			"6:32: sources[1].to: only with dir"}},
		{"file source needs content", head + "sources:\n  - {file: /x}\n  - {file: /y, content: a, source: files/motd}\n  - {file: etc/z, content: a}\n  - {file: /etc/../z, content: a}\n  - {dir: files/root, to: /opt/}\n", []string{
			"5:5: sources[0]: file needs content or source",
			"6:36: sources[1].source: content and source are alternatives; give one",
			`7:12: sources[2].file: "etc/z" must be an absolute path in the image`,
			`8:12: sources[3].file: "/etc/../z" is not a clean path (/z)`}},
		{"missing source file and dir", head + "sources:\n  - {file: /x, source: files/missing}\n  - dir: files/motd\n  - image: oci:files/nolayout:v1\n", []string{
			"5:24: sources[0].source: TESTDATA/files/missing: no such file",
			"6:10: sources[1].dir: TESTDATA/files/motd: not a directory",
			"7:12: sources[2].image: TESTDATA/files/nolayout: no such file"}},
		{"duplicate users", head + "users:\n  - {name: a, uid: 1000}\n  - {name: a, uid: 1001}\n  - {name: b, uid: 1000}\n  - {name: c, uid: 0}\n", []string{
			"6:12: users[1].name: duplicate user \"a\" (first at testdata/p.yaml:5:12)",
			"7:20: users[2].uid: uid 1000 already belongs to user \"a\"",
			"8:20: users[3].uid: uid 0 already belongs to user \"root\""}},
		{"root is uid 0", head + "users: [{name: root, uid: 1}]\n", []string{
			"4:27: users[0].uid: root's uid is 0"}},
		{"duplicate groups", head + "groups:\n  - {name: g, gid: 10}\n  - {name: g, gid: 11}\n  - {name: h, gid: 10}\n", []string{
			"6:12: groups[1].name: duplicate group \"g\" (first at testdata/p.yaml:5:12)",
			"7:20: groups[2].gid: gid 10 already belongs to group \"g\""}},
		{"bad user fields", head + "users:\n  - name: Bad\n    uid: 1\n    groups: [nosuch]\n    home: home/x\n    password: hunter2\n", []string{
			`5:11: users[0].name: "Bad" is not a valid user name`,
			`7:14: users[0].groups[0]: unknown group "nosuch" (not in groups)`,
			`8:11: users[0].home: "home/x" must be an absolute path in the image`,
			`9:15: users[0].password: must be a crypt(3) hash ("$6$...", "$y$..."), "!" or "*"; plain text is refused`}},
		{"service errors", head + "services:\n  - {name: a, command: [x], user: nobody}\n  - {name: a, command: []}\n  - {name: b, command: [x], env: {1X: y}}\n", []string{
			`5:35: services[0].user: unknown user "nobody" (not in users)`,
			`6:12: services[1].name: duplicate service "a" (first at testdata/p.yaml:5:12)`,
			`6:24: services[1].command: must name a program`,
			`7:39: services[2].env.1X: "1X" is not a variable name`}},
		{"service fields", head + "services:\n  - name: a\n    command: [\"/bin/x\\0\"]\n    working_dir: var\n    on_exit: halt\n", []string{
			`6:15: services[0].command[0]: holds a NUL byte`,
			`7:18: services[0].working_dir: "var" must be an absolute path in the image`,
			`8:14: services[0].on_exit: "halt" is not one of poweroff, reboot`}},
		{"health requires unknown service", head + "services: [{name: a, command: [x]}]\nupdate:\n  health: {require: [a, b], grace: soon}\n  tries: 0\n  keys: [files/none.pub]\n", []string{
			`6:25: update.health.require[1]: unknown service "b" (not in services; a systemd unit is written with its suffix, like ssh.service)`,
			`6:36: update.health.grace: "soon" is not a duration (like 10s, 1m30s)`,
			`7:10: update.tries: must be at least 1`,
			`8:10: update.keys[0]: TESTDATA/files/none.pub: no such file`}},
		{"missing boot loader", head + "boot: {efi: files/systemd-bootx64.efi}\n", []string{
			"4:13: boot.efi: TESTDATA/files/systemd-bootx64.efi: no such file"}},
		{"boot loader as a path", head + "boot: {loader: files/systemd-bootx64.efi}\n", []string{
			`4:16: boot.loader: "files/systemd-bootx64.efi" is not one of systemd-boot, grub, u-boot`}},
		{"U-Boot on x86_64", head + "boot: {loader: u-boot}\n", []string{
			"4:16: boot.loader: keel writes U-Boot scripts for aarch64 boards, not x86_64 (use systemd-boot or grub)"}},
		{"UKI through GRUB", head + "boot: {loader: grub, uki: true}\n", []string{
			"4:27: boot.uki: unified kernel images boot through systemd-boot, not grub"}},
		{"unset env variable", "name: t\nversion: \"1\"\nkernel: {file: \"${KEEL_TEST_UNSET}/vmlinuz\"}\n", []string{
			`3:16: kernel.file: "${KEEL_TEST_UNSET}/vmlinuz": environment variable KEEL_TEST_UNSET is not set`}},
		{"bad names", "name: My Image\nversion: 1 0\nkernel: {file: files/vmlinuz}\nhostname: a_b\n", []string{
			`1:7: name: "My Image" is not a valid name (lowercase letters, digits, '.', '_', '-')`,
			`2:10: version: "1 0" is not a valid version (letters, digits, '.', '_', '+', '~', '-')`,
			`4:11: hostname: "a_b" is not a valid host name`}},
		{"unsupported version", "keel: 2\n" + head, []string{
			"1:7: keel: unsupported profile version 2 (this keel reads version 1)"}},
		{"duplicate key", head + "hostname: a\nhostname: b\n", []string{
			"5:1: hostname: duplicate key (first at line 4)"}},
		// yaml.v3 gives a parser error the line before the construct it
		// was parsing (0-based), a scanner error its own line.
		{"syntax error", head + "disk: {size: 1G\n", []string{
			"3: did not find expected ',' or '}'"}},
		{"scanner error", head + "disk: @x\n", []string{
			"4: found character that cannot start any token"}},
		{"not a mapping", "- name: t\n", []string{
			"1:1: a profile is a mapping of fields, not a list"}},
		{"two documents", head + "---\nname: u\n", []string{
			"4:1: a profile is one YAML document; this is a second one"}},
		{"merge keys", "base: &b {name: t}\n<<: *b\n", []string{
			"2:1: YAML merge keys (<<) are not supported; use include"}},
		{"include errors", head + "include: [files/missing.yaml]\n", []string{
			"4:11: include[0]: TESTDATA/files/missing.yaml: no such file"}},
		{"include not a regular file", head + "include: [/dev/zero, files]\n", []string{
			"4:11: include[0]: /dev/zero: not a regular file",
			"4:22: include[1]: TESTDATA/files: not a regular file"}},
		{"empty list item", head + "users:\n  - {name: a, uid: 1}\n  -\n", []string{
			"6:4: users[1]: empty list item"}},
		{"alias bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n", []string{
			"1:1: too many YAML nodes (more than 100000 after expanding aliases)"}},
		{"include not a list", head + "include: base.yaml\n", []string{
			`4:10: include: expected a list of files, got "base.yaml"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("testdata/p.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("no error for:\n%s", c.yaml)
			}
			td := abs(t, "testdata")
			var want []string
			for _, w := range c.want {
				want = append(want, "testdata/p.yaml:"+strings.ReplaceAll(w, "TESTDATA", td))
			}
			if got := err.Error(); got != strings.Join(want, "\n") {
				t.Errorf("profile:\n%s\ngot:\n%s\nwant:\n%s", c.yaml, got, strings.Join(want, "\n"))
			}
			if len(Errors(err)) != len(want) {
				t.Errorf("Errors() = %d errors, want %d", len(Errors(err)), len(want))
			}
		})
	}
}

// TestUnreadable checks that a source that exists but cannot be read is an
// error at load time, not halfway through a build.
func TestUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root reads anything, so run this test again as nobody.
		asNobody(t, "TestUnreadable")
		return
	}
	dir, err := os.MkdirTemp("", "unreadable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Chmod(filepath.Join(dir, "closed"), 0o700)
		os.RemoveAll(dir)
	})
	f := filepath.Join(dir, "secret")
	if err := os.WriteFile(f, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(dir, "closed")
	if err := os.Mkdir(d, 0); err != nil {
		t.Fatal(err)
	}
	_, err = Parse("testdata/p.yaml", []byte(head+"sources:\n  - {file: /x, source: "+f+"}\n  - {dir: "+d+"}\n"))
	want := "testdata/p.yaml:5:24: sources[0].source: " + f + ": permission denied\n" +
		"testdata/p.yaml:6:11: sources[1].dir: " + d + ": permission denied"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

// TestNotRegular checks that a FIFO is refused without being opened (which
// would hang).
func TestNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	_, err := Parse("testdata/p.yaml", []byte("name: t\nversion: \"1\"\nkernel: {file: "+fifo+"}\n"))
	want := "testdata/p.yaml:3:16: kernel.file: " + fifo + ": not a regular file"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o600) }

// asNobody reruns test in a child process as uid/gid 65534 and fails t if
// the child fails.
func asNobody(t *testing.T, test string) {
	t.Helper()
	// The test binary sits in a directory only root may enter; copy it out.
	dir, err := os.MkdirTemp("", "asnobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The child runs in dir, with a copy of the one fixture it reads, so it
	// does not depend on nobody being able to enter the checkout.
	kernel := filepath.Join(dir, "testdata", "files", "vmlinuz")
	if err := os.MkdirAll(filepath.Dir(kernel), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+test+"$", "-test.v")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as nobody: %v\n%s", test, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("%s as nobody did not pass:\n%s", test, out)
	}
}

// TestDiskPlanned checks that the disk sizes validation accepts, and the
// default disk size, are image/disk's planner's: the build lays out
// exactly what validated.
func TestDiskPlanned(t *testing.T) {
	for _, c := range []struct {
		name, disk string
		want       Size
	}{
		{"aligned: partitions + 2MiB", "{esp: 64MiB, slot: 128MiB, data: 64MiB}", 386 * MiB},
		{"each partition from a MiB boundary", "{esp: 64001KiB, slot: 100001KiB, data: 64001KiB}", 324 * MiB},
		{"smallest partitions", "{esp: 34089472, slot: 512, data: 8MiB}", 45 * MiB},
		{"explicit size kept", "{size: 1GiB, esp: 64001KiB, slot: 100001KiB, data: 64001KiB}", GiB},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse("testdata/p.yaml", []byte(head+"disk: "+c.disk+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			if p.Disk.Size != c.want {
				t.Errorf("disk size %s, want %s", p.Disk.Size, c.want)
			}
			l, err := disk.Plan(p.Disk.planSizes(), nil)
			if err != nil {
				t.Fatalf("validated, then the planner refused: %v", err)
			}
			if l.Size != int64(p.Disk.Size) {
				t.Errorf("planner lays out %d bytes, profile says %s", l.Size, p.Disk.Size)
			}
		})
	}
	// The limits the field docs state are the planner's.
	for _, d := range []struct{ field, want string }{
		{"ESP", fmt.Sprintf("at least %d bytes (%s will do)", disk.MinESP, Size((disk.MinESP+MiB-1)/MiB*MiB))},
		{"Data", fmt.Sprintf("at least %s", Size(disk.MinData))},
	} {
		f, _ := reflect.TypeFor[Disk]().FieldByName(d.field)
		if doc := f.Tag.Get("doc"); !strings.Contains(doc, d.want) {
			t.Errorf("disk.%s doc %q does not say %q", strings.ToLower(d.field), doc, d.want)
		}
	}
}

// TestArchDefaults: each arch is accepted and names its Debian
// architecture, unless debian.architecture says otherwise.
func TestArchDefaults(t *testing.T) {
	for _, c := range []struct{ yaml, arch, debian string }{
		{"debian: {suite: bookworm}\n", "x86_64", "amd64"},
		{"arch: x86_64\ndebian: {suite: bookworm}\n", "x86_64", "amd64"},
		{"arch: aarch64\ndebian: {suite: bookworm}\n", "aarch64", "arm64"},
		{"arch: aarch64\ndebian: {suite: bookworm, architecture: armhf}\n", "aarch64", "armhf"},
	} {
		p, err := Parse("testdata/p.yaml", []byte("name: t\nversion: \"1\"\nkernel: {package: linux-image}\n"+c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if p.Arch != c.arch || p.Debian.Architecture != c.debian {
			t.Errorf("%q: arch %q, debian.architecture %q; want %q, %q", c.yaml, p.Arch, p.Debian.Architecture, c.arch, c.debian)
		}
	}
}

// TestLevelsMatchWriter keeps the profile's accepted and default squashfs
// levels those of the writer, which refuses the rest: a profile that
// validates must build.
func TestLevelsMatchWriter(t *testing.T) {
	for _, c := range squashfs.Compressions {
		if got, want := levels[string(c)], squashfs.Levels(c); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: profiles accept levels %v, the writer %v", c, got, want)
		}
		if err := (squashfs.Options{Compression: c, Level: defaultLevels[string(c)]}).Validate(); err != nil {
			t.Errorf("%s: the profile's default level %d: %v", c, defaultLevels[string(c)], err)
		}
	}
	if len(levels) != len(squashfs.Compressions) {
		t.Errorf("profiles know levels for %d compressors, the writer has %d", len(levels), len(squashfs.Compressions))
	}
}
