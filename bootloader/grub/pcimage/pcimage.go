// Package pcimage builds GRUB's BIOS (i386-pc) boot code in Go: the
// core.img that `grub-mkimage -O i386-pc` makes, and the embedding that
// `grub-bios-setup` does on a GPT disk (boot.img in the MBR's boot code,
// core.img in the BIOS boot partition). Its inputs are the files of
// GRUB's i386-pc directory (boot.img, diskboot.img, lzma_decompress.img,
// kernel.img, *.mod, moddep.lst), so no GRUB tool runs on the build host.
//
// The layouts follow GRUB 2.06: util/mkimage.c (grub_install_generate_image),
// util/grub-mkimagexx.c (grub_mkimage_load_image), util/resolve.c and
// util/setup.c; include/grub/offsets.h, include/grub/kernel.h and
// include/grub/i386/pc/boot.h for the offsets.
//
// The boot chain this makes, under a BIOS: the MBR code (boot.img) loads
// the first sector of core.img (diskboot.img) from the LBA patched at
// 0x5c; diskboot reads the remaining sectors from its block list to
// 0x8200; lzma_decompress.img there inflates kernel.img and the modules to
// 0x9000, the kernel's link address; the kernel loads the embedded modules
// in order, sets $prefix and runs the embedded configuration.
package pcimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/ulikunitz/xz/lzma"
)

const sectorSize = 512

// Addresses and offsets of GRUB 2.06 for i386-pc.
const (
	// linkAddr is where kernel.img is linked and decompressed to
	// (GRUB_KERNEL_I386_PC_LINK_ADDR).
	linkAddr = 0x9000
	// decompressorAddr is where diskboot loads the sectors after its
	// own (GRUB_BOOT_I386_PC_KERNEL_SEG+0x20 segment); the decompressor
	// must end before linkAddr.
	decompressorAddr = 0x8200
	// coreLimit bounds core.img in memory (grub-mkimage: "core image is
	// too big"); kernelLimit bounds the kernel with its bss.
	coreLimit   = 0x78000
	kernelLimit = 0x68000
	// maxCoreSectors is what boot.img and diskboot can load: core.img
	// from linkAddr-0x1000 (0x8000) up to coreLimit. grub-bios-setup
	// caps the embedding at this many sectors too.
	maxCoreSectors = (coreLimit - linkAddr) / sectorSize

	// Fields of lzma_decompress.img (startup_raw.S).
	decompCompressedSize   = 0x08 // GRUB_DECOMPRESSOR_I386_PC_COMPRESSED_SIZE
	decompUncompressedSize = 0x0c // GRUB_DECOMPRESSOR_I386_PC_UNCOMPRESSED_SIZE
	decompRSRedundancy     = 0x10 // GRUB_KERNEL_I386_PC_REED_SOLOMON_REDUNDANCY
	decompNoRSLength       = 0x14 // GRUB_KERNEL_I386_PC_NO_REED_SOLOMON_LENGTH

	// The block list at the end of diskboot.img (struct
	// grub_pc_bios_boot_blocklist: start u64, len u16, segment u16),
	// growing down from the end of the sector.
	blocklistLen = 12
	// blockSegment is the segment diskboot loads the first listed
	// sectors to: 0x8200 >> 4.
	blockSegment = decompressorAddr >> 4

	// Fields of boot.img (include/grub/i386/pc/boot.h).
	bootKernelSector = 0x5c  // GRUB_BOOT_MACHINE_KERNEL_SECTOR, u64 LBA of core.img
	bootDrive        = 0x64  // GRUB_BOOT_MACHINE_BOOT_DRIVE
	bootDriveCheck   = 0x66  // GRUB_BOOT_MACHINE_DRIVE_CHECK
	bootCodeEnd      = 0x1b8 // GRUB_BOOT_MACHINE_WINDOWS_NT_MAGIC: disk signature, then the partition table

	// The module area after the kernel (include/grub/kernel.h).
	moduleMagic   = 0x676d696d // GRUB_MODULE_MAGIC, "mimg" in memory
	moduleInfoLen = 12         // struct grub_module_info32
	moduleHeadLen = 8          // struct grub_module_header
	objTypeELF    = 0          // OBJ_TYPE_ELF
	objTypeConfig = 2          // OBJ_TYPE_CONFIG
	objTypePrefix = 3          // OBJ_TYPE_PREFIX
	moduleAlign   = 4          // ALIGN_ADDR: the target's pointer size
	lzmaDictSize  = 1 << 16    // compress_kernel_lzma's props.dictSize
	bootImgName   = "boot.img"
	diskbootName  = "diskboot.img"
	decompName    = "lzma_decompress.img"
	kernelName    = "kernel.img"
	moddepName    = "moddep.lst"
	pcBiosHDDrive = 0xff // "use the drive the BIOS booted from" (write_rootdev)
	nop           = 0x90
)

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// CoreImage makes what `grub-mkimage -O i386-pc -p prefix -c config
// modules...` makes: diskboot.img, then lzma_decompress.img, then the
// LZMA-compressed kernel.img (laid out at its link address) followed by
// the modules (with their moddep.lst dependencies), the embedded
// configuration (when config is not empty) and the prefix.
//
// files holds GRUB's i386-pc directory. Modules are named as in
// moddep.lst (a ".mod" suffix is dropped); a module listed twice, or
// needed by several, is embedded once. The prefix is always embedded
// (grub-mkimage requires -p), an empty config is not. The output is a
// function of the inputs alone.
//
// The compressed part differs from grub-mkimage's because GRUB's LZMA
// encoder (LzmaEnc.c with LzFind.c, optimal parsing) and ulikunitz/xz's
// differ: keel's stream is about 11% larger and decompresses to the same
// bytes, and everything around it is byte-for-byte the same apart from
// the two lengths that follow from the stream's (see
// TestMatchesGrubMkimage).
func CoreImage(files fs.FS, modules []string, prefix string, config []byte) ([]byte, error) {
	if strings.IndexByte(prefix, 0) >= 0 {
		return nil, fmt.Errorf("prefix %q contains a NUL byte", prefix)
	}
	if bytes.IndexByte(config, 0) >= 0 {
		// GRUB reads the embedded configuration as a C string.
		return nil, errors.New("embedded configuration contains a NUL byte")
	}

	mods, err := loadModules(files, modules)
	if err != nil {
		return nil, err
	}

	total := moduleInfoLen
	for _, m := range mods {
		total += moduleHeadLen + alignUp(len(m.data), moduleAlign)
	}
	if len(config) > 0 {
		total += moduleHeadLen + alignUp(len(config)+1, moduleAlign)
	}
	total += moduleHeadLen + alignUp(len(prefix)+1, moduleAlign)

	kernel, err := readFile(files, kernelName)
	if err != nil {
		return nil, err
	}
	img, kl, err := layoutKernel(kernel, total)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kernelName, err)
	}

	// The module area: info header, then each object behind its own
	// header, in grub_install_generate_image's order (modules, config,
	// prefix). img is zeroed, which pads each object and terminates the
	// strings.
	le := binary.LittleEndian
	off := kl.size
	le.PutUint32(img[off:], moduleMagic)
	le.PutUint32(img[off+4:], moduleInfoLen)
	le.PutUint32(img[off+8:], uint32(total))
	off += moduleInfoLen
	put := func(typ uint32, data []byte, size int) {
		le.PutUint32(img[off:], typ)
		le.PutUint32(img[off+4:], uint32(moduleHeadLen+size))
		off += moduleHeadLen
		copy(img[off:], data)
		off += size
	}
	for _, m := range mods {
		put(objTypeELF, m.data, alignUp(len(m.data), moduleAlign))
	}
	if len(config) > 0 {
		put(objTypeConfig, config, alignUp(len(config)+1, moduleAlign))
	}
	put(objTypePrefix, []byte(prefix), alignUp(len(prefix)+1, moduleAlign))
	if off != len(img) {
		return nil, fmt.Errorf("internal error: module area ends at %d, image is %d bytes", off, len(img))
	}

	compressed, err := compress(img)
	if err != nil {
		return nil, err
	}

	decomp, err := readFile(files, decompName)
	if err != nil {
		return nil, err
	}
	if len(decomp) < decompNoRSLength+2 {
		return nil, fmt.Errorf("%s: %d bytes, too short for its header", decompName, len(decomp))
	}
	if len(decomp) > linkAddr-decompressorAddr {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d between 0x%x and the kernel at 0x%x", decompName, len(decomp), linkAddr-decompressorAddr, decompressorAddr, linkAddr)
	}
	core := make([]byte, 0, sectorSize+len(decomp)+len(compressed))
	core = append(core, make([]byte, sectorSize)...)
	core = append(core, decomp...)
	le.PutUint32(core[sectorSize+decompCompressedSize:], uint32(len(compressed)))
	le.PutUint32(core[sectorSize+decompUncompressedSize:], uint32(len(img)))
	core = append(core, compressed...)

	// grub-mkimage's size checks, without the diskboot sector it
	// counts separately.
	body := len(core) - sectorSize
	if linkAddr+body > coreLimit || body > 0xffff*sectorSize {
		return nil, fmt.Errorf("core image is too big: ends at 0x%x, above 0x%x (%d modules)", linkAddr+body, coreLimit, len(mods))
	}
	if kl.size+kl.bss+linkAddr > kernelLimit {
		return nil, fmt.Errorf("kernel image is too big: ends at 0x%x, above 0x%x", kl.size+kl.bss+linkAddr, kernelLimit)
	}

	diskboot, err := readFile(files, diskbootName)
	if err != nil {
		return nil, err
	}
	if len(diskboot) != sectorSize {
		return nil, fmt.Errorf("%s: %d bytes, want %d", diskbootName, len(diskboot), sectorSize)
	}
	copy(core, diskboot)
	// The default block list: the sectors after diskboot, length
	// patched here as grub-mkimage does; Embed rewrites it for the
	// disk.
	first := core[sectorSize-blocklistLen : sectorSize]
	if seg := le.Uint16(first[10:]); seg != blockSegment {
		return nil, fmt.Errorf("%s: block list segment 0x%x, want 0x%x (not GRUB 2 diskboot.img?)", diskbootName, seg, blockSegment)
	}
	le.PutUint16(first[8:], uint16((body+sectorSize-1)/sectorSize))
	return core, nil
}

type module struct {
	name string
	data []byte
}

// loadModules resolves modules against moddep.lst and reads each file.
func loadModules(files fs.FS, requested []string) ([]module, error) {
	names := make([]string, len(requested))
	for i, n := range requested {
		n = strings.TrimSuffix(n, ".mod")
		if n == "" || strings.ContainsAny(n, "/\\:") || !fs.ValidPath(n) {
			return nil, fmt.Errorf("module name %q is not a GRUB module name", requested[i])
		}
		names[i] = n
	}
	list, err := readFile(files, moddepName)
	if err != nil {
		return nil, err
	}
	deps, err := parseModdep(list)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", moddepName, err)
	}
	order, err := deps.resolve(names)
	if err != nil {
		return nil, err
	}
	mods := make([]module, 0, len(order))
	for _, n := range order {
		if n == "" || strings.ContainsAny(n, "/\\") || !fs.ValidPath(n) {
			return nil, fmt.Errorf("%s: dependency %q of %q is not a GRUB module name", moddepName, n, deps.neededBy(order, n))
		}
		b, err := fs.ReadFile(files, n+".mod")
		if err != nil {
			if by := deps.neededBy(order, n); by != "" {
				return nil, fmt.Errorf("module %q, needed by %q in %s: %w", n, by, moddepName, err)
			}
			if _, listed := deps[n]; !listed {
				return nil, fmt.Errorf("unknown module %q (not in %s): %w", n, moddepName, err)
			}
			return nil, fmt.Errorf("module %q: %w", n, err)
		}
		if err := checkModule(n, b); err != nil {
			return nil, fmt.Errorf("module %q (%s.mod): %w", n, n, err)
		}
		mods = append(mods, module{name: n, data: b})
	}
	return mods, nil
}

func readFile(files fs.FS, name string) ([]byte, error) {
	b, err := fs.ReadFile(files, name)
	if err != nil {
		return nil, fmt.Errorf("reading GRUB i386-pc file: %w", err)
	}
	return b, nil
}

// kernelLayout is grub_mkimage_load_image's layout for i386-pc.
type kernelLayout struct {
	size int // bytes from linkAddr to the end of the last data section
	bss  int // bytes of NOBITS after that
}

// layoutKernel places kernel.img's sections at their link addresses, as
// grub_mkimage_load_image does for a target without a relocating loader
// (i386-pc): kernel.img is an executable already linked at 0x9000, so
// its text and data sections are copied to sh_addr-0x9000 and no
// relocation is applied (the R_386_32/R_386_PC32 handling in
// grub-mkimagexx.c is for relocatable targets such as EFI; modules are
// relocated by GRUB itself at boot). The image ends after the last data
// section in section order, where the module area starts; bss is not
// stored. The returned buffer has extra zeroed bytes for the module
// area.
func layoutKernel(b []byte, extra int) ([]byte, kernelLayout, error) {
	var kl kernelLayout
	f, err := parseELF32(b)
	if err != nil {
		return nil, kl, err
	}
	if f.typ != etExec || f.machine != em386 {
		return nil, kl, fmt.Errorf("ELF type %d machine %d, want an executable (2) for the 386 (3)", f.typ, f.machine)
	}
	isText := func(s elfSection) bool {
		return s.typ == shtProgbits && s.flags&(shfAlloc|shfExecinstr) == shfAlloc|shfExecinstr
	}
	isData := func(s elfSection) bool {
		return s.typ == shtProgbits && s.flags&(shfAlloc|shfExecinstr) == shfAlloc
	}
	// place is put_section without relocation: the section's offset
	// from the link address, bounded so that the buffer below can hold
	// it.
	place := func(s elfSection) (int, error) {
		if s.addr < linkAddr || uint64(s.addr)+uint64(s.size) > kernelLimit {
			return 0, fmt.Errorf("section %s at 0x%x size 0x%x is outside 0x%x-0x%x", s.name, s.addr, s.size, linkAddr, kernelLimit)
		}
		return int(s.addr - linkAddr), nil
	}
	var kept []elfSection
	text := false
	for _, s := range f.sections {
		if !isText(s) {
			continue
		}
		if s.addr != linkAddr {
			return nil, kl, fmt.Errorf("text section %s starts at 0x%x, not at the link address 0x%x", s.name, s.addr, linkAddr)
		}
		at, err := place(s)
		if err != nil {
			return nil, kl, err
		}
		kl.size = at + int(s.size)
		kept = append(kept, s)
		text = true
	}
	if !text {
		return nil, kl, errors.New("no text section")
	}
	for _, s := range f.sections {
		if !isData(s) {
			continue
		}
		at, err := place(s)
		if err != nil {
			return nil, kl, err
		}
		kl.size = at + int(s.size)
		kept = append(kept, s)
	}
	end := kl.size
	for _, s := range f.sections {
		if s.typ != shtNobits {
			continue
		}
		at, err := place(s)
		if err != nil {
			return nil, kl, err
		}
		end = at + int(s.size)
	}
	if end < kl.size {
		return nil, kl, fmt.Errorf("bss ends at 0x%x, before the data at 0x%x", end+linkAddr, kl.size+linkAddr)
	}
	kl.bss = end - kl.size
	img := make([]byte, kl.size+extra)
	for _, s := range kept {
		at := int(s.addr - linkAddr)
		if at+int(s.size) > kl.size {
			// grub-mkimage would write into the module area here.
			return nil, kl, fmt.Errorf("section %s at 0x%x size 0x%x ends after the image at 0x%x", s.name, s.addr, s.size, kl.size+linkAddr)
		}
		copy(img[at:], f.data(s))
	}
	return img, kl, nil
}

// compress is compress_kernel_lzma: a raw LZMA stream (no header, no end
// marker) with lc=3 lp=0 pb=2, which is what lzma_decompress.img's
// _LzmaDecodeA reads, the length coming from the uncompressed-size field.
// The dictionary size does not matter to that decoder (it decodes in
// place in memory) and is grub-mkimage's. The hash-table match finder
// compresses GRUB's payload far better than ulikunitz/xz's binary tree
// (173 KiB against 250 KiB for keel's module set; grub-mkimage: 152 KiB).
func compress(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := lzma.WriterConfig{
		Properties: &lzma.Properties{LC: 3, LP: 0, PB: 2},
		DictCap:    lzmaDictSize,
		Matcher:    lzma.HashTable4,
		Size:       int64(len(data)),
	}.NewWriter(&buf)
	if err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	return buf.Bytes()[lzma.HeaderLen:], nil
}

// decompress inverts compress, for a stream whose uncompressed length is
// known: it puts back the classic header that GRUB leaves out.
func decompress(stream []byte, size int) ([]byte, error) {
	h := make([]byte, lzma.HeaderLen)
	h[0] = (2*5+0)*9 + 3 // (pb*5+lp)*9+lc
	binary.LittleEndian.PutUint32(h[1:], lzmaDictSize)
	binary.LittleEndian.PutUint64(h[5:], uint64(size))
	r, err := lzma.NewReader(io.MultiReader(bytes.NewReader(h), bytes.NewReader(stream)))
	if err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	return out, nil
}

// ReadWriterAt is a disk Embed reads the MBR of and writes to.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// Embed installs core (from CoreImage) on a GPT disk as grub-bios-setup
// (grub-install) does for a BIOS boot partition: core is written at
// sector start (an absolute LBA) followed by Reed-Solomon codes, as many
// sectors of them as core has, as fit in the partition and as a BIOS can
// load (at most 888 sectors in all); diskboot's block list points at the
// sectors after the first. Then boot.img's code goes into the MBR's first
// 440 bytes, patched with start. The disk signature, the partition table
// (keel's protective MBR) and 0x55AA stay. sectors is the partition's
// size in 512-byte sectors; Embed refuses a core that does not fit, and
// a disk whose sector 0 has no MBR signature yet.
//
// The codes let lzma_decompress.img repair a core image partly
// overwritten, for example by a tool that takes the sectors after the
// MBR for its own (GRUB's reason for them).
//
// The MBR goes last, so that an interrupted Embed leaves an MBR that
// does not point at a half-written core.
func Embed(disk ReadWriterAt, files fs.FS, core []byte, start, sectors uint64) error {
	le := binary.LittleEndian
	if len(core) < 2*sectorSize {
		return fmt.Errorf("core image is %d bytes, too short to be one", len(core))
	}
	if seg := le.Uint16(core[sectorSize-2:]); seg != blockSegment {
		return fmt.Errorf("core image does not start with diskboot.img (block list segment 0x%x, want 0x%x)", seg, blockSegment)
	}
	noRS := int(le.Uint16(core[sectorSize+decompNoRSLength:]))
	if noRS == 0xffff || sectorSize+noRS > len(core) {
		return fmt.Errorf("core image version mismatch (Reed-Solomon field %d for %d bytes)", noRS, len(core))
	}
	coreSectors := uint64((len(core) + sectorSize - 1) / sectorSize)
	if coreSectors > maxCoreSectors {
		return fmt.Errorf("core image is %d sectors, more than the %d a BIOS can load below 0x%x", coreSectors, maxCoreSectors, coreLimit)
	}
	if coreSectors > sectors {
		return fmt.Errorf("core image needs %d sectors (%d bytes), the BIOS boot partition has %d", coreSectors, len(core), sectors)
	}
	if start == 0 {
		return errors.New("core image cannot start at sector 0, the MBR")
	}
	// setup.c: maxsec is twice the core with codes, capped at what the
	// BIOS loads; the GPT embedding takes min(partition, maxsec).
	nsec := min(sectors, 2*coreSectors, maxCoreSectors)
	if start > (1<<63-1)/sectorSize-nsec {
		return fmt.Errorf("start sector %d is out of range", start)
	}

	boot, err := readFile(files, bootImgName)
	if err != nil {
		return err
	}
	if len(boot) != sectorSize {
		return fmt.Errorf("%s: %d bytes, want %d", bootImgName, len(boot), sectorSize)
	}
	mbr := make([]byte, sectorSize)
	if _, err := disk.ReadAt(mbr, 0); err != nil {
		return fmt.Errorf("reading the MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return fmt.Errorf("sector 0 has no MBR signature (0x%02x%02x): write the partition table first", mbr[510], mbr[511])
	}

	img := make([]byte, nsec*sectorSize)
	copy(img, core)
	// save_blocklists for an embedding: clear the block lists down to
	// the terminator, then one entry for the contiguous sectors after
	// the first, loaded to 0x8200, and a zero terminator below it.
	for at := sectorSize - blocklistLen; ; at -= blocklistLen {
		if at <= 0 {
			return errors.New("core image has no block list terminator")
		}
		e := img[at : at+blocklistLen]
		if le.Uint16(e[8:]) == 0 {
			break
		}
		clear(e)
	}
	first := img[sectorSize-blocklistLen : sectorSize]
	le.PutUint64(first[0:], start+1)
	le.PutUint16(first[8:], uint16(nsec-1))
	le.PutUint16(first[10:], blockSegment)
	clear(img[sectorSize-2*blocklistLen : sectorSize-blocklistLen])

	// The codes cover core after diskboot and the decompressor's first
	// noRS bytes (its code up to the decoder, and the header fields,
	// among them the redundancy written here).
	le.PutUint32(img[sectorSize+decompRSRedundancy:], uint32(len(img)-len(core)))
	addRedundancy(img[sectorSize+noRS:len(core)], img[len(core):])

	if _, err := disk.WriteAt(img, int64(start)*sectorSize); err != nil {
		return fmt.Errorf("writing core image at sector %d: %w", start, err)
	}

	// write_rootdev and the drive-check patch for a hard disk: core.img's
	// LBA, drive 0xff (the one the BIOS booted from, in %dl), and the
	// jump over the "is %dl a hard disk" fix-up replaced with two NOPs
	// for BIOSes that pass a wrong drive number.
	code := bytes.Clone(boot[:bootCodeEnd])
	le.PutUint64(code[bootKernelSector:], start)
	code[bootDrive] = pcBiosHDDrive
	code[bootDriveCheck] = nop
	code[bootDriveCheck+1] = nop
	if _, err := disk.WriteAt(code, 0); err != nil {
		return fmt.Errorf("writing boot code to the MBR: %w", err)
	}
	return nil
}
