package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// sysClassBlock is where the kernel lists every block device and partition.
const sysClassBlock = "/sys/class/block"

// blockDev is one entry of /sys/class/block, from its uevent file.
type blockDev struct {
	Name         string // DEVNAME, e.g. "vda2"; the node is /dev/<Name>
	Major, Minor uint32
	Partition    bool   // DEVTYPE=partition
	PartUUID     string // GPT partition GUID, lowercase; "" if none
	PartName     string // GPT partition label; "" if none
	PartN        int    // partition number, from 1
	Disk         string // the whole disk a partition is on, e.g. "vda"
}

func (b blockDev) String() string {
	s := fmt.Sprintf("%s (%d:%d)", b.Name, b.Major, b.Minor)
	if b.PartName != "" {
		s += " PARTLABEL=" + b.PartName
	}
	if b.PartUUID != "" {
		s += " PARTUUID=" + b.PartUUID
	}
	return s
}

// scanBlockDevices reads every device under dir (a /sys/class/block), sorted
// by name. Entries whose uevent cannot be read are skipped: a device can go
// away while we look.
func scanBlockDevices(dir string) ([]blockDev, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing block devices: %w", err)
	}
	var devs []blockDev
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(filepath.Join(p, "uevent"))
		if err != nil {
			continue
		}
		b := parseUevent(f)
		f.Close()
		if b.Name == "" {
			b.Name = e.Name()
		}
		if b.Partition {
			// /sys/class/block/vda2 -> ../../devices/.../block/vda/vda2:
			// the directory a partition sits in is its disk.
			if real, err := filepath.EvalSymlinks(p); err == nil {
				b.Disk = filepath.Base(filepath.Dir(real))
			}
		}
		devs = append(devs, b)
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].Name < devs[j].Name })
	fillPartUUIDs(devs)
	return devs, nil
}

// fillPartUUIDs reads partition GUIDs from the disks' GPTs where uevent did
// not give them: the kernel puts PARTUUID in uevent only in some versions
// (Debian's 6.1 does not), and without udev nobody else would.
func fillPartUUIDs(devs []blockDev) {
	tables := map[string]map[int]string{}
	for i, b := range devs {
		if !b.Partition || b.PartUUID != "" || b.Disk == "" || b.PartN == 0 {
			continue
		}
		t, ok := tables[b.Disk]
		if !ok {
			t, _ = readGPTGUIDs(filepath.Join("/dev", b.Disk))
			tables[b.Disk] = t
		}
		devs[i].PartUUID = t[b.PartN]
	}
}

// readGPTGUIDs returns partition number → unique partition GUID (lowercase)
// from the primary GPT of the disk at path, with 512-byte sectors.
func readGPTGUIDs(path string) (map[int]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hdr := make([]byte, 512)
	if _, err := f.ReadAt(hdr, 512); err != nil {
		return nil, err
	}
	if string(hdr[:8]) != "EFI PART" {
		return nil, fmt.Errorf("%s: no GPT", path)
	}
	le := binary.LittleEndian
	lba, n, size := le.Uint64(hdr[72:]), le.Uint32(hdr[80:]), le.Uint32(hdr[84:])
	if n > 1024 || size < 128 || size > 4096 {
		return nil, fmt.Errorf("%s: implausible GPT (%d entries of %d bytes)", path, n, size)
	}
	ents := make([]byte, int(n)*int(size))
	if _, err := f.ReadAt(ents, int64(lba)*512); err != nil {
		return nil, err
	}
	m := map[int]string{}
	for i := 0; i < int(n); i++ {
		e := ents[i*int(size):]
		g := e[16:32]
		if allZeroBytes(e[:16]) {
			continue
		}
		m[i+1] = fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(g[0:]), le.Uint16(g[4:]), le.Uint16(g[6:]), g[8:10], g[10:16])
	}
	return m, nil
}

func allZeroBytes(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// parseUevent reads the KEY=value lines of a sysfs uevent file.
func parseUevent(f *os.File) blockDev {
	var b blockDev
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "DEVNAME":
			b.Name = v
		case "MAJOR":
			n, _ := strconv.ParseUint(v, 10, 32)
			b.Major = uint32(n)
		case "MINOR":
			n, _ := strconv.ParseUint(v, 10, 32)
			b.Minor = uint32(n)
		case "DEVTYPE":
			b.Partition = v == "partition"
		case "PARTUUID":
			b.PartUUID = strings.ToLower(v)
		case "PARTNAME":
			b.PartName = v
		case "PARTN":
			b.PartN, _ = strconv.Atoi(v)
		}
	}
	return b
}

func (d devSpec) matches(b blockDev) bool {
	switch d.Kind {
	case "PARTUUID":
		return b.PartUUID != "" && b.PartUUID == d.Value
	case "PARTLABEL":
		return b.PartName == d.Value
	case "path":
		return "/dev/"+b.Name == d.Value
	}
	return false
}

// findDevice returns the device spec names. Of several matches (a label on
// two disks, say an old image attached as a second disk) the one on
// preferDisk wins, then the first by name, so the choice is stable.
func findDevice(devs []blockDev, spec devSpec, preferDisk string) (blockDev, bool) {
	var found []blockDev
	for _, b := range devs {
		if spec.matches(b) {
			found = append(found, b)
		}
	}
	if len(found) == 0 {
		return blockDev{}, false
	}
	for _, b := range found {
		if preferDisk != "" && b.Disk == preferDisk {
			return b, true
		}
	}
	return found[0], true
}
