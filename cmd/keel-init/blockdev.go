package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"keel/image/gpt"
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
			var err error
			// A disk partitioned otherwise (MBR) is no fault: its
			// partitions are simply never keel's.
			if t, err = readGPTGUIDs(filepath.Join("/dev", b.Disk)); err != nil && !errors.Is(err, gpt.ErrNoGPT) {
				noteOnce(fmt.Sprintf("partition GUIDs of %s: %v", b.Disk, err))
			}
			tables[b.Disk] = t
		}
		devs[i].PartUUID = t[b.PartN]
	}
}

// readGPTGUIDs returns partition number → unique partition GUID (lowercase)
// from the GPT of the disk at path: the primary, or the backup when the
// primary is damaged, so that a disk with a corrupted primary GPT still
// finds its root.
func readGPTGUIDs(path string) (map[int]string, error) {
	t, err := gpt.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if t.FromBackup {
		noteOnce(fmt.Sprintf("%s: primary GPT damaged (%v), using the backup", path, t.PrimaryErr))
	}
	m := map[int]string{}
	for _, p := range t.Partitions {
		m[p.Number] = strings.ToLower(p.GUID)
	}
	return m, nil
}

// noted holds what noteOnce has printed: block devices are listed again
// and again while keel-init waits for its root, and a damaged disk is worth
// one line, not one a poll.
var noted sync.Map

// noteOnce prints msg on the console (keel-init's stderr) the first time.
func noteOnce(msg string) {
	if _, seen := noted.LoadOrStore(msg, true); !seen {
		fmt.Fprintln(os.Stderr, "keel-init: "+msg)
	}
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
