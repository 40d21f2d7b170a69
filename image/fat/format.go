package fat

import (
	"fmt"
	"io"
	"time"
)

// FormatOptions describe a new filesystem. Every field that ends up on disk
// comes from here, never from the clock or a random source.
type FormatOptions struct {
	// Label is the volume label, at most 11 characters of the 8.3 character
	// set; lower case is folded to upper. Empty means no label ("NO NAME").
	Label string
	// VolumeID is the volume serial number (shown as XXXX-XXXX).
	VolumeID uint32
	// HiddenSectors is the LBA of the partition's first sector on the disk,
	// in 512-byte sectors; firmware and fsck expect it to be right.
	HiddenSectors uint32
	// Time stamps the volume label and every entry created through the
	// returned FS. Zero means 1980-01-01 00:00:00.
	Time time.Time
	// ClusterSize in bytes (512..65536, a power of two); zero picks the size
	// mkfs.fat would for this volume size.
	ClusterSize int
}

const (
	reservedSectors = 32 // as mkfs.fat: room for boot, FSInfo, backups and boot code
	numFATs         = 2
	minClusters     = 65525 // fewer and every reader takes the volume for FAT16
)

// Format writes an empty FAT32 filesystem of size bytes to w and returns it
// open for editing. If w is also an io.ReaderAt (an *os.File is) the FS can
// read files back; otherwise only directory structure it wrote itself is
// known, which is all building an image needs.
//
// Format writes the reserved sectors, both FATs and the root directory in
// full, so stale bytes in w cannot show through; the data area is left as it
// is (zero in a new sparse file). The primary boot sector is written last,
// so an interrupted Format does not leave something that looks like FAT32.
func Format(w io.WriterAt, size int64, opts FormatOptions) (*FS, error) {
	bs, err := geometry(size, opts)
	if err != nil {
		return nil, fmt.Errorf("format fat32: %w", err)
	}
	dev, ok := w.(ReaderWriterAt)
	if !ok {
		dev = writeOnly{w}
	}
	fs := newFS(dev, size, bs, opts.Time)
	fs.hasFSInfo, fs.hasBackupFSInfo = true, true
	clusters := fs.clusterCount()
	fs.fat = newTable(int(fs.fatBytes/4), clusters, uint32(fs.sectorSize/4))
	fs.fat.free = clusters
	fs.fat.ent[0] = 0x0FFFFF00 | uint32(bs.media)
	fs.fat.ent[1] = 0x0FFFFFFF // clean shutdown, no hard errors
	fs.fat.ent[2] = eoc        // root directory, one cluster
	fs.fat.free--
	fs.fat.last = 2

	// Reserved area: everything zero but the boot sectors and FSInfo.
	reserved := make([]byte, fs.fatOffset)
	boot := bs.marshal()
	info := fsInfoSector(fs.fat.free, fs.fat.last)
	copy(reserved[6*sectorSize:], boot)
	copy(reserved[1*sectorSize:], info)
	copy(reserved[7*sectorSize:], info)
	if _, err := dev.WriteAt(reserved, 0); err != nil {
		return nil, fmt.Errorf("format fat32: write reserved sectors: %w", err)
	}

	// FATs: zeros, then the first sector with the three used entries.
	zero := make([]byte, min(fs.fatBytes, 1<<20))
	for i := int64(0); i < numFATs; i++ {
		for off := int64(0); off < fs.fatBytes; off += int64(len(zero)) {
			n := min(int64(len(zero)), fs.fatBytes-off)
			if _, err := dev.WriteAt(zero[:n], fs.fatOffset+i*fs.fatBytes+off); err != nil {
				return nil, fmt.Errorf("format fat32: write FAT: %w", err)
			}
		}
	}
	fs.fat.set(0, fs.fat.ent[0])
	if err := fs.flushFAT(); err != nil {
		return nil, fmt.Errorf("format fat32: %w", err)
	}

	// Root directory: a volume label entry when there is a label, as
	// mkfs.fat writes it; fsck.fat compares it with the boot sector's.
	root := &dir{first: bs.rootCluster, clusters: []uint32{bs.rootCluster}, data: make([]byte, fs.clusterSize)}
	if bs.label != noLabel {
		e := fs.newShortEntry(bs.label, attrVolumeID, 0, 0)
		copy(root.data, e[:])
	}
	if _, err := dev.WriteAt(root.data, fs.clusterOffset(bs.rootCluster)); err != nil {
		return nil, fmt.Errorf("format fat32: write root directory: %w", err)
	}
	fs.dirs[root.first] = root

	if _, err := dev.WriteAt(boot, 0); err != nil {
		return nil, fmt.Errorf("format fat32: write boot sector: %w", err)
	}
	return fs, nil
}

var noLabel = [11]byte{'N', 'O', ' ', 'N', 'A', 'M', 'E', ' ', ' ', ' ', ' '}

// geometry lays out a volume as mkfs.fat 4.2 does for FAT32.
func geometry(size int64, opts FormatOptions) (*bootSector, error) {
	label, err := volumeLabel(opts.Label)
	if err != nil {
		return nil, err
	}
	total := size / sectorSize
	if total > 0xFFFFFFFF {
		return nil, fmt.Errorf("size %d is beyond FAT32's 2 TiB", size)
	}
	spc := int64(opts.ClusterSize / sectorSize)
	if opts.ClusterSize == 0 {
		// mkfs.fat's table (after Microsoft's format command).
		switch mb := size >> 20; {
		case mb > 32*1024:
			spc = 64
		case mb > 16*1024:
			spc = 32
		case mb > 8*1024:
			spc = 16
		case mb > 260:
			spc = 8
		default:
			spc = 1
		}
	} else if opts.ClusterSize%sectorSize != 0 || spc&(spc-1) != 0 || spc > 128 {
		return nil, fmt.Errorf("cluster size %d is not a power of two from 512 to 65536", opts.ClusterSize)
	}

	// The FAT must cover the clusters that remain after the FATs
	// themselves. Bigger FATs leave fewer clusters, so the entries needed
	// shrink as the FAT grows: binary-search the smallest FAT that fits, then
	// grow it as mkfs.fat does, to whole clusters and until the data area
	// starts on a cluster boundary.
	need := func(fat int64) int64 {
		c := max((total-reservedSectors-numFATs*fat)/spc, 0)
		return ((c+2)*4 + sectorSize - 1) / sectorSize
	}
	lo, hi := int64(1), max(total/numFATs, 1)
	for lo < hi {
		if mid := (lo + hi) / 2; need(mid) <= mid {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	// Like mkfs.fat, a whole number of clusters per FAT.
	fatSectors := (lo + spc - 1) / spc * spc
	for i := int64(0); i < spc && (reservedSectors+numFATs*fatSectors)%spc != 0; i++ {
		fatSectors++
	}
	clusters := (total - reservedSectors - numFATs*fatSectors) / spc
	if clusters < minClusters {
		return nil, fmt.Errorf("size %d gives %d clusters of %d bytes, FAT32 needs at least %d (use at least 33 MiB)",
			size, max(clusters, 0), spc*sectorSize, minClusters)
	}
	if clusters > maxClusters {
		return nil, fmt.Errorf("size %d needs %d clusters, more than FAT32 allows; use larger clusters", size, clusters)
	}
	return &bootSector{
		oem:            [8]byte{'M', 'S', 'W', 'I', 'N', '4', '.', '1'}, // the most compatible OEM name (fatgen103)
		bytesPerSector: sectorSize,
		secPerClus:     uint8(spc),
		reserved:       reservedSectors,
		numFATs:        numFATs,
		media:          0xF8,
		secPerTrack:    63,
		heads:          255,
		hidden:         opts.HiddenSectors,
		totalSectors:   uint32(total),
		fatSize:        uint32(fatSectors),
		rootCluster:    2,
		fsInfo:         1,
		backupBoot:     6,
		driveNum:       0x80,
		volumeID:       opts.VolumeID,
		label:          label,
	}, nil
}

func volumeLabel(s string) ([11]byte, error) {
	if s == "" {
		return noLabel, nil
	}
	var l [11]byte
	if len(s) > 11 {
		return l, fmt.Errorf("%w: volume label %q longer than 11 characters", ErrInvalidName, s)
	}
	for i := range l {
		l[i] = ' '
	}
	for i := 0; i < len(s); i++ {
		c := upper(s[i])
		if c != ' ' && !shortChar(c) {
			return l, fmt.Errorf("%w: volume label %q: character %q not allowed", ErrInvalidName, s, s[i])
		}
		l[i] = c
	}
	if l[0] == ' ' {
		return l, fmt.Errorf("%w: volume label %q starts with a space", ErrInvalidName, s)
	}
	return l, nil
}
