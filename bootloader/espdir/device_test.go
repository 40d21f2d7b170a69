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
	noESP := fakeSys(t, map[string][]string{"vdb": {"root-a"}})
	if _, err := findDevice(noESP, "/", 254, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("disk without an ESP: %v", err)
	}
}
