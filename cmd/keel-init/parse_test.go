package main

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"keel/image/mountinfo"
)

func TestParseModuleList(t *testing.T) {
	in := `# written by rootfs/kmod
kernel/drivers/virtio/virtio.ko

kernel/drivers/block/virtio_blk.ko
/lib/modules/other/extra/foo.ko.xz  debug=1 verbose=2
kernel/fs/ext4/ext4.ko.zst
`
	got, err := parseModuleList(strings.NewReader(in), "6.1.0-56-amd64")
	if err != nil {
		t.Fatal(err)
	}
	want := []moduleLoad{
		{Path: "/lib/modules/6.1.0-56-amd64/kernel/drivers/virtio/virtio.ko"},
		{Path: "/lib/modules/6.1.0-56-amd64/kernel/drivers/block/virtio_blk.ko"},
		{Path: "/lib/modules/other/extra/foo.ko.xz", Params: "debug=1 verbose=2"},
		{Path: "/lib/modules/6.1.0-56-amd64/kernel/fs/ext4/ext4.ko.zst"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	for p, want := range map[string]bool{"a.ko": false, "a.ko.xz": true, "a.ko.zst": true, "a.ko.gz": true} {
		if isCompressedModule(p) != want {
			t.Errorf("isCompressedModule(%q) != %v", p, want)
		}
	}
	if _, err := parseModuleList(strings.NewReader("virtio_blk\n"), "r"); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("a module name instead of a path: %v", err)
	}
}

func TestLoadModules(t *testing.T) {
	mods := []moduleLoad{{Path: "/a.ko"}, {Path: "/b.ko"}, {Path: "/c.ko"}, {Path: "/d.ko"}}
	var tried []string
	var logged []string
	failed := loadModules(mods, func(m moduleLoad) error {
		tried = append(tried, m.Path)
		switch m.Path {
		case "/b.ko":
			return errModuleLoaded
		case "/c.ko":
			return errors.New("unknown symbol")
		}
		return nil
	}, func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) })
	if failed != 1 || len(tried) != 4 {
		t.Errorf("failed %d, tried %v: want 1 failure and every module tried in order", failed, tried)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "/c.ko") {
		t.Errorf("logged %q", logged)
	}
}

func TestScanBlockDevices(t *testing.T) {
	devs, err := scanBlockDevices("testdata/sys/class/block")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range devs {
		names = append(names, d.Name)
	}
	if want := []string{"loop0", "vda", "vda1", "vda2", "vda3", "vda4", "vdb", "vdb1"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("devices %v, want %v (broken/ has no uevent and is skipped)", names, want)
	}
	want := blockDev{Name: "vda2", Major: 254, Minor: 2, Partition: true,
		PartUUID: "0a1b2c3d-0000-4000-8000-000000000002", PartName: "root-a", PartN: 2, Disk: "vda"}
	if devs[3] != want {
		t.Errorf("vda2: %+v, want %+v", devs[3], want)
	}
	if devs[1].Partition || devs[1].Disk != "" {
		t.Errorf("vda, a whole disk: %+v", devs[1])
	}
}

func TestFindDevice(t *testing.T) {
	devs, err := scanBlockDevices("testdata/sys/class/block")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		spec   devSpec
		prefer string
		want   string // "" for not found
	}{
		{"PARTUUID, case folded from upper-case uevent", devSpec{"PARTUUID", "0a1b2c3d-0000-4000-8000-000000000002"}, "", "vda2"},
		{"PARTUUID lower-case in uevent", devSpec{"PARTUUID", "0a1b2c3d-0000-4000-8000-000000000003"}, "", "vda3"},
		{"unknown PARTUUID", devSpec{"PARTUUID", "deadbeef-0000-4000-8000-000000000002"}, "", ""},
		{"label on two disks: first by name", devSpec{"PARTLABEL", "data"}, "", "vda4"},
		{"label on two disks: the root's disk wins", devSpec{"PARTLABEL", "data"}, "vdb", "vdb1"},
		{"label on two disks: preferred disk without it", devSpec{"PARTLABEL", "data"}, "sda", "vda4"},
		{"path", devSpec{"path", "/dev/vda1"}, "", "vda1"},
		{"whole disk path", devSpec{"path", "/dev/loop0"}, "", "loop0"},
		{"missing label", devSpec{"PARTLABEL", "nope"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, ok := findDevice(devs, tc.spec, tc.prefer)
			if tc.want == "" {
				if ok {
					t.Errorf("found %v", b)
				}
				return
			}
			if !ok || b.Name != tc.want {
				t.Errorf("got %v (found %v), want %s", b, ok, tc.want)
			}
		})
	}
}

func TestParseOSReleaseAndReadyLine(t *testing.T) {
	m := parseOSRelease(strings.NewReader(`# comment
NAME="Keel Test"
ID=debian
IMAGE_ID=keel-test
IMAGE_VERSION='2.0.0'
PRETTY_NAME="a \"quoted\" name"
broken line
`))
	if m["NAME"] != "Keel Test" || m["IMAGE_VERSION"] != "2.0.0" || m["PRETTY_NAME"] != `a "quoted" name` {
		t.Errorf("parsed %q", m)
	}
	for _, tc := range []struct {
		osr  map[string]string
		slot string
		want string
	}{
		{m, "a", "keel: ready keel-test 2.0.0 slot=a"},
		{map[string]string{"ID": "debian", "VERSION_ID": "12"}, "b", "keel: ready debian 12 slot=b"},
		{map[string]string{}, "", "keel: ready unknown unknown slot=unknown"},
	} {
		if got := readyLine(tc.osr, tc.slot); got != tc.want {
			t.Errorf("readyLine = %q, want %q", got, tc.want)
		}
	}
}

func TestLookupUser(t *testing.T) {
	passwd := `root:x:0:0:root:/root:/bin/sh
www:x:33:33:www-data:/var/www:/usr/sbin/nologin
bad:x:notanumber:1::/:/bin/sh
short:x:5:5
ingroup:x:50:50::/:/bin/sh
`
	group := `root:x:0:
www:x:33:
video:x:44:www,other
audio:x:29:other
wheel:x:10:root,www
broken:x:4O:ingroup
alsobroken:x::nobody-here
`
	for _, tc := range []struct {
		name    string
		want    account
		wantErr string
	}{
		{name: "root", want: account{Name: "root", Home: "/root"}},
		{name: "www", want: account{Name: "www", UID: 33, GID: 33, Groups: []uint32{44, 10}, Home: "/var/www"}},
		{name: "nobody", wantErr: "not in /etc/passwd"},
		{name: "bad", wantErr: "/etc/passwd:3: bad uid"},
		{name: "short", wantErr: "/etc/passwd:4: 4 fields"},
		// A damaged group line is an error for its members only.
		{name: "ingroup", wantErr: "/etc/group:6: bad gid of group broken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lookupUser(tc.name, strings.NewReader(passwd), strings.NewReader(group))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name == "root" {
				got.Groups = nil // root is in wheel; not the point here
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestToUnmount(t *testing.T) {
	ms := []mountinfo.Entry{
		{Target: "/", FSType: "squashfs", Source: "/dev/vda2"},
		{Target: "/dev", FSType: "devtmpfs", Source: "devtmpfs"},
		{Target: "/proc", FSType: "proc", Source: "proc"},
		{Target: "/var", FSType: "ext4", Source: "/dev/vda4"},
		{Target: "/var/my esp", FSType: "vfat", Source: "/dev/vda1"},
		{Target: "/tmp", FSType: "tmpfs", Source: "tmpfs"},
	}
	if got, want := toUnmount(ms), []string{"/var/my esp", "/var"}; !reflect.DeepEqual(got, want) {
		t.Errorf("toUnmount = %q, want %q (nested first; not /, not pseudo filesystems)", got, want)
	}
}

func TestWaitForDeviceTimeout(t *testing.T) {
	start := time.Now()
	_, err := waitForDevice("testdata/sys/class/block", devSpec{"PARTUUID", "deadbeef-0000-4000-8000-000000000002"}, "", 120*time.Millisecond)
	if err == nil {
		t.Fatal("found a device that is not there")
	}
	if d := time.Since(start); d < 120*time.Millisecond || d > 2*time.Second {
		t.Errorf("gave up after %v, want about 120ms", d)
	}
	for _, want := range []string{
		"PARTUUID=deadbeef-0000-4000-8000-000000000002 did not appear within 120ms; block devices seen:\n",
		"  vda2 (254:2) PARTLABEL=root-a PARTUUID=0a1b2c3d-0000-4000-8000-000000000002\n",
		"  loop0 (7:0)\n",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	_, err = waitForDevice(t.TempDir(), devSpec{"path", "/dev/vda2"}, "", 10*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "(none: is the disk driver") {
		t.Errorf("no devices at all: %v", err)
	}
}
