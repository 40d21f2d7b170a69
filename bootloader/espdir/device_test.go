package espdir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fakeSys lays out the part of sysfs FindDevice reads: /sys/dev/block
// links into /sys/devices, a partition file and uevent per partition.
func fakeSys(t *testing.T, disks map[string][]string) string {
	t.Helper()
	sys := t.TempDir()
	os.MkdirAll(filepath.Join(sys, "dev", "block"), 0o755)
	minor := 0
	for disk, labels := range disks {
		dd := filepath.Join(sys, "devices", "pci0000:00", "virtio0", "block", disk)
		os.MkdirAll(dd, 0o755)
		os.WriteFile(filepath.Join(dd, "uevent"), []byte("DEVNAME="+disk+"\nDEVTYPE=disk\n"), 0o644)
		for i, l := range labels {
			name := disk + string(rune('1'+i))
			pd := filepath.Join(dd, name)
			os.MkdirAll(pd, 0o755)
			os.WriteFile(filepath.Join(pd, "partition"), []byte{byte('1' + i), '\n'}, 0o644)
			os.WriteFile(filepath.Join(pd, "uevent"), []byte("DEVNAME="+name+"\nDEVTYPE=partition\nPARTNAME="+l+"\n"), 0o644)
			minor++
			rel, _ := filepath.Rel(filepath.Join(sys, "dev", "block"), pd)
			os.Symlink(rel, filepath.Join(sys, "dev", "block", "254:"+string(rune('0'+minor))))
		}
	}
	return sys
}

func TestFindDevice(t *testing.T) {
	sys := fakeSys(t, map[string][]string{"vda": {"esp", "root-a", "root-b", "data"}})
	tests := []struct {
		name  string
		minor uint32
		want  Device
		err   error
	}{
		{"root on root-a", 2, Device{Disk: "/dev/vda", ESP: "/dev/vda1", Root: "/dev/vda2"}, nil},
		{"root on root-b", 3, Device{Disk: "/dev/vda", ESP: "/dev/vda1", Root: "/dev/vda3"}, nil},
		{"unknown device", 9, Device{}, ErrNotFound},
	}
	for _, tt := range tests {
		got, err := findDevice(sys, "/", 254, tt.minor)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("%s: %+v, %v; want %+v, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
	// A dm-verity root: /sys/dev/block/253:0 is dm-0, whose slave is vda3.
	dm := filepath.Join(sys, "devices", "virtual", "block", "dm-0")
	os.MkdirAll(filepath.Join(dm, "slaves"), 0o755)
	os.Symlink("../../../../pci0000:00/virtio0/block/vda/vda3", filepath.Join(dm, "slaves", "vda3"))
	os.Symlink("../../devices/virtual/block/dm-0", filepath.Join(sys, "dev", "block", "253:0"))
	if got, err := findDevice(sys, "/", 253, 0); err != nil || got != (Device{Disk: "/dev/vda", ESP: "/dev/vda1", Root: "/dev/vda3"}) {
		t.Errorf("root on dm-verity over root-b: %+v, %v", got, err)
	}
	os.Symlink("../../../../pci0000:00/virtio0/block/vda/vda2", filepath.Join(dm, "slaves", "vda2"))
	if _, err := findDevice(sys, "/", 253, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("dm device over two partitions: %v, want ErrNotFound", err)
	}
	noESP := fakeSys(t, map[string][]string{"vdb": {"root-a"}})
	if _, err := findDevice(noESP, "/", 254, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("disk without an ESP: %v", err)
	}
}
