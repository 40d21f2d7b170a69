// Package build is keel's pipeline (DESIGN §1): a loaded profile becomes a
// root tree, a squashfs in slot A, an initrd with keel-init and the kernel
// modules, an ESP with systemd-boot and slot A's entry, and an empty data
// partition, all in one GPT disk image.
package build

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"keel/bootloader"
	"keel/image/build/buildcache"
	"keel/image/delta"
	"keel/image/disk"
	"keel/image/ext4"
	"keel/image/fat"
	"keel/image/install"
	"keel/profiles"
	"keel/rootfs"
	"keel/rootfs/assemble"
	"keel/rootfs/deb/lock"
	"keel/rootfs/deb/source"
	"keel/rootfs/initrd"
	"keel/rootfs/kmod"
	"keel/rootfs/squashfs"
	"keel/rootfs/verity"
)

// biosLoader is a boot loader that also boots by BIOS (GRUB): it needs a
// BIOS boot partition, and writes the MBR's boot code and that partition.
type biosLoader interface {
	// InstallBIOS writes the boot code to disk, whose BIOS boot partition
	// starts at sector start and has sectors sectors.
	InstallBIOS(disk interface {
		io.ReaderAt
		io.WriterAt
	}, start, sectors uint64) error
}

// Options are a build's inputs beyond the profile.
type Options struct {
	Output   string // disk image path
	KeelInit []byte // the static keel-init binary
	Keelctl  []byte // the static keelctl binary, for /usr/bin/keelctl (nil: none)
	// ApplyImage applies an OCI image onto a tree (nil: no image sources).
	ApplyImage func(ctx context.Context, t *rootfs.Tree, ref string) error
	// Epoch is SOURCE_DATE_EPOCH: every timestamp in the image.
	Epoch   int64
	Workers int
	Logger  *slog.Logger
	// Progress reports the stage and, while writing the root, bytes done.
	Progress func(stage string, done, total int64)
	// SignKey, when set, makes Build also write a signed update bundle of
	// the same build (DESIGN §5).
	SignKey ed25519.PrivateKey
	// Bundle is where the bundle goes; empty means NAME-VERSION.keel
	// beside Output.
	Bundle string
	// Debian is where packages come from, for profiles that have any.
	Debian Debian
	// SecureBoot, when set, signs systemd-boot and the slot's unified
	// kernel image (which it turns on) for Secure Boot.
	SecureBoot *SecureBoot
	// Cache, when set, gives back the image of an earlier build with the
	// same inputs instead of building it again, and keeps this one's.
	Cache *buildcache.Cache
	// ToolID identifies keel itself (a hash of its binary): part of every
	// cache key, so no entry outlives the keel that made it.
	ToolID string
}

// Result describes a finished build.
type Result struct {
	Output     string
	Layout     *disk.Layout
	RootOffset int64 // where slot A (and its squashfs) starts on the disk
	RootBytes  int64 // slot payload: the squashfs, and its verity tree if any
	// SquashfsBytes is the squashfs alone (RootBytes without the tree).
	SquashfsBytes int64
	// Verity is the slot's hash tree, with disk.verity.
	Verity *verity.Info
	// UKIBytes is the slot's unified kernel image, with boot.uki.
	UKIBytes     int64
	ContentBytes int64 // file content in the root tree
	Inodes       uint32
	KernelBytes  int64
	InitrdBytes  int64
	Modules      int
	// Index is the chunk index (image/delta) of slot a's rootfs, kernel
	// and initrd or unified kernel image: kept on the ESP as
	// /keel/a/index and the bundle's first artifact.
	Index    []byte
	Bundle   string // the update bundle written, if any
	BuildID  string // the bundle's build id, if one was written
	Duration time.Duration
	// Packages is how many Debian packages are in the root; Downloaded
	// the bytes fetched for them (0 from a warm cache); LockWritten the
	// lock file written, if any.
	Packages        int
	Downloaded      int64
	LockWritten     string
	PackageWarnings []string
	// Cached: the image is a copy of an earlier build's with the same
	// inputs (Options.Cache). Reused names what else came from the cache:
	// "package lock" (the packages chosen against the same index before,
	// which was then not read), "initrd".
	Cached bool
	Reused []string
}

// Build runs the whole pipeline.
func Build(ctx context.Context, p *profiles.Profile, o Options) (*Result, error) {
	start := time.Now()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	stage := func(s string) {
		o.Logger.Info(s)
		if o.Progress != nil {
			o.Progress(s, 0, 0)
		}
	}
	seed := []byte("keel\x00" + p.Name)
	sizes := disk.Sizes{Total: int64(p.Disk.Size), ESP: int64(p.Disk.ESP), Slot: int64(p.Disk.Slot), Data: int64(p.Disk.Data), Arch: p.Arch}
	// Sizes that cannot fit fail here, before any download; the layout
	// itself is planned once the loader says whether it boots by BIOS.
	if _, err := disk.Plan(sizes, seed); err != nil {
		return nil, p.Errorf("disk", "%v", err)
	}
	if o.SecureBoot != nil && p.Arch != "" && p.Arch != profiles.DefaultArch {
		// What Secure Boot checks is a unified kernel image, which keel
		// assembles for x86_64 only (profile validation refuses boot.uki).
		return nil, p.Errorf("arch", "Secure Boot signs a unified kernel image, not supported for %s yet", p.Arch)
	}
	res := &Result{Output: o.Output}
	bc := newBuildCache(p, o)
	if r := bc.get(o); r != nil {
		o.Logger.Info("build cache: unchanged inputs, image reused", "entry", bc.key.String())
		r.Duration = time.Since(start)
		return r, nil
	}
	var prep *source.Prepared
	var err error
	if p.UsesDebian() {
		po := bc.pinned(o)
		if prep, err = prepareDebian(ctx, p, po, stage); err != nil {
			return nil, err
		}
		if po.Debian.Lock != o.Debian.Lock {
			res.Reused = append(res.Reused, "package lock")
		}
		res.Downloaded = prep.Downloaded
		if prep.LockWritten {
			res.LockWritten = o.Debian.Lock
		}
	}
	loader, err := bootLoader(p, prep, bc.hostFS())
	if err != nil {
		return nil, err
	}
	if err := secureBootLoader(p, loader, o.SecureBoot); err != nil {
		return nil, err
	}
	bios, _ := loader.(biosLoader)
	sizes.BIOSBoot = bios != nil
	layout, err := disk.Plan(sizes, seed)
	if err != nil {
		return nil, p.Errorf("disk", "%v", err)
	}
	res.Layout = layout
	if o.SecureBoot != nil {
		p.Boot.UKI = true // what Secure Boot can check: kernel, initrd and command line in one signed file
	}

	stage("assembling root tree")
	tree, err := assembleTree(ctx, p, o, prep, res)
	if err != nil {
		return nil, err
	}

	stage("building initrd")
	tmp, err := os.MkdirTemp(filepath.Dir(o.Output), ".keel-build-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	k, err := findKernel(ctx, p, o, prep, tmp, bc.hostPaths())
	if err != nil {
		return nil, err
	}
	kernel := k.file
	initrdPath := filepath.Join(tmp, "initrd")
	ukiFile := filepath.Join(tmp, "keel.efi")
	nmods, err := bc.initrd(ctx, initrdPath, p, k, o, prep, res)
	if err != nil {
		return nil, err
	}
	res.Modules = nmods

	a, _ := layout.Slot("a")
	res.RootOffset = a.Start
	init := assemble.InitFor(tree)
	options := []string{"root=PARTUUID=" + strings.ToLower(a.GUID), "keel.slot=a"}
	if init != "" {
		options = append(options, "init="+init)
	}
	if p.Kernel.Cmdline != "" {
		options = append(options, p.Kernel.Cmdline)
	}
	entry := bootloader.Entry{
		Slot: "a", Title: fmt.Sprintf("%s %s (slot a)", p.Name, p.Version), Generation: 1,
		Kernel: "/keel/a/vmlinuz", Initrd: "/keel/a/initrd", Options: strings.Join(options, " "),
	}
	if p.Boot.UKI {
		entry.Kernel, entry.Initrd, entry.Options, entry.EFI = "", "", "", install.UKIPath("a")
	}
	when := time.Unix(o.Epoch, 0).UTC()
	var root disk.ReadWriterAt // slot a, once written
	contents := disk.Contents{
		Layout: layout,
		Root: func(ctx context.Context, w disk.ReadWriterAt) (int64, error) {
			stage("writing root squashfs to slot a")
			root = w
			st, err := squashfs.Write(ctx, w, tree, squashfs.Options{
				Compression: squashfs.Compression(p.Disk.Squashfs.Compression),
				Level:       p.Disk.Squashfs.Level,
				Workers:     o.Workers,
				ModTime:     uint32(max(0, o.Epoch)),
				Logger:      o.Logger,
				Progress: func(done, total int64) {
					if o.Progress != nil {
						o.Progress("writing root squashfs to slot a", done, total)
					}
				},
			})
			if errors.Is(err, disk.ErrPartitionFull) {
				return 0, p.Errorf("disk.slot", "slot of %s is too small for the root filesystem (%.1f MiB of file content before compression): raise disk.slot",
					profiles.Size(a.Size), float64(treeContent(tree))/(1<<20))
			}
			if err != nil {
				return 0, err
			}
			res.RootBytes, res.SquashfsBytes, res.ContentBytes, res.Inodes = st.Bytes, st.Bytes, st.ContentBytes, st.Inodes
			if !p.Disk.Verity {
				return st.Bytes, nil
			}
			stage("writing verity hash tree to slot a")
			v, err := writeVerity(ctx, w, st.Bytes, seed, p, o.Workers)
			if errors.Is(err, disk.ErrPartitionFull) {
				return 0, p.Errorf("disk.slot", "slot of %s is too small for the root filesystem and its verity hash tree (%d bytes of squashfs): raise disk.slot",
					profiles.Size(a.Size), st.Bytes)
			}
			if err != nil {
				return 0, fmt.Errorf("verity: %w", err)
			}
			res.Verity, res.RootBytes = v, v.HashOffset+v.HashSize
			return res.RootBytes, nil
		},
		ESP: func(w disk.ReadWriterAt, size int64, lba uint32) error {
			stage("writing ESP")
			esp, err := fat.Format(w, size, fat.FormatOptions{Label: "ESP", VolumeID: volumeID(seed), HiddenSectors: lba, Time: when})
			if err != nil {
				return err
			}
			if err := loader.Install(esp); err != nil {
				return err
			}
			if err := esp.Mkdir("/keel"); err != nil {
				return err
			}
			if err := bootloader.WriteName(esp, p.Boot.Loader); err != nil {
				return err
			}
			for _, d := range []string{"/keel/a", "/keel/b"} {
				if err := esp.Mkdir(d); err != nil {
					return err
				}
			}
			if p.Boot.UKI {
				pe, err := makeUKI(p, prep, tree, kernel, initrdPath, ukiCmdline(p, init, res.Verity), o.SecureBoot)
				if err != nil {
					return err
				}
				if err := os.WriteFile(ukiFile, pe, 0o644); err != nil {
					return err
				}
				if res.UKIBytes, err = copyInto(esp, install.UKIPath("a"), ukiFile); err != nil {
					return err
				}
			} else {
				if res.KernelBytes, err = copyInto(esp, "/keel/a/vmlinuz", kernel); err != nil {
					return err
				}
				if res.InitrdBytes, err = copyInto(esp, "/keel/a/initrd", initrdPath); err != nil {
					return err
				}
			}
			// The slot's chunks, for the next delta install (and the bundle).
			srcs, err := slotSources(root, res, p.Boot.UKI, kernel, initrdPath, ukiFile)
			if err != nil {
				return err
			}
			if res.Index, err = delta.MakeIndex(ctx, delta.DefaultParams, srcs); err != nil {
				return err
			}
			if err := esp.WriteFile(install.IndexPath("a"), bytes.NewReader(res.Index), int64(len(res.Index))); err != nil {
				return err
			}
			// What the slot holds, for the installer's checks and keelctl status.
			im := install.Image{Name: p.Name, Version: p.Version, Compatible: p.Compatible, Arch: p.Arch, Tries: p.Update.Tries, RootBytes: res.RootBytes}
			if res.Verity != nil {
				im.RootHash = hex.EncodeToString(res.Verity.RootHash)
			}
			if err := install.WriteImage(esp, "a", im); err != nil {
				return err
			}
			if err := loader.WriteEntry(esp, entry); err != nil {
				return err
			}
			// An update writes slot b's files beside slot a's: refuse an
			// ESP that could not hold them now, not at the first update.
			slotFiles := res.KernelBytes + res.InitrdBytes + res.UKIBytes + int64(len(res.Index)) + 2*esp.ClusterSize()
			if free := esp.FreeBytes(); free < slotFiles {
				return p.Errorf("disk.esp", "an ESP of %s holds slot a's boot files (%.1f MiB) with %.1f MiB free: an update needs as much again for slot b: raise disk.esp",
					profiles.Size(size), float64(slotFiles)/(1<<20), float64(free)/(1<<20))
			}
			return esp.Sync()
		},
		Data: func(w io.WriterAt, size int64) error {
			stage("formatting data partition")
			return ext4.Format(w, size, ext4.Options{
				UUID: uuid16(seed, "data fs"), HashSeed: uuid16(seed, "data hash seed"),
				Label: "data", Time: o.Epoch,
				// The image is a new sparse file: skipping its zero blocks keeps it sparse.
				AssumeZeroed: true,
			})
		},
	}
	if bios != nil {
		contents.Boot = func(w disk.ReadWriterAt, l *disk.Layout) error {
			stage("writing BIOS boot code")
			p, _ := l.Find(disk.LabelBIOSBoot)
			return bios.InstallBIOS(w, uint64(p.Start/512), uint64(p.Size/512))
		}
	}
	if _, err := disk.Write(ctx, o.Output, contents); err != nil {
		return nil, err
	}
	var l *lock.Lock
	if prep != nil {
		l = prep.Lock
	}
	bc.put(p, o, res, l)
	// The bundle is made while the initrd still exists in tmp, from the
	// same files the disk got.
	if o.SignKey != nil {
		stage("writing update bundle")
		if err := writeBundle(ctx, p, o, res, kernel, initrdPath, ukiFile); err != nil {
			return nil, fmt.Errorf("disk image %s is written, but not its bundle: %w", o.Output, err)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// Tree assembles the root filesystem tree Build writes to slot A: the
// profile's Debian packages (fetched as Build fetches them), its sources and
// what keel generates. Tests compare it with what readers find in the
// image.
func Tree(ctx context.Context, p *profiles.Profile, o Options) (*rootfs.Tree, error) {
	var prep *source.Prepared
	if p.UsesDebian() {
		var err error
		if prep, err = prepareDebian(ctx, p, o, func(string) {}); err != nil {
			return nil, err
		}
	}
	return assembleTree(ctx, p, o, prep, &Result{})
}

func assembleTree(ctx context.Context, p *profiles.Profile, o Options, prep *source.Prepared, res *Result) (*rootfs.Tree, error) {
	ao := assemble.Options{KeelInit: o.KeelInit, Keelctl: o.Keelctl, ApplyImage: o.ApplyImage, Epoch: o.Epoch, Logger: o.Logger}
	if prep != nil && len(prep.Root) > 0 {
		ao.ApplyPackages = func(ctx context.Context, t *rootfs.Tree) error {
			rep, err := prep.Apply(ctx, t, source.ApplyOptions{Epoch: o.Epoch, Arch: p.Debian.Architecture, Logger: o.Logger})
			if err != nil {
				return err
			}
			res.Packages = len(prep.Root)
			res.PackageWarnings = rep.Warnings
			return nil
		}
	}
	return assemble.Tree(ctx, p, ao)
}

func writeInitrd(ctx context.Context, name string, p *profiles.Profile, k *kernel, o Options) (int, error) {
	t := rootfs.New()
	for _, d := range []string{"/dev", "/proc", "/sys", "/sysroot", "/run", "/etc"} {
		if err := t.Add(d, &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755, Mtime: o.Epoch}); err != nil {
			return 0, err
		}
	}
	init := rootfs.NewFile(0o755, o.KeelInit)
	init.Mtime = o.Epoch
	if err := t.Add("/init", init); err != nil {
		return 0, err
	}
	// keel-init reads this to know it is the initrd's /init.
	rel := rootfs.NewFile(0o644, []byte("NAME=keel-initrd\nID=keel-initrd\n"))
	rel.Mtime = o.Epoch
	if err := t.Add("/etc/initrd-release", rel); err != nil {
		return 0, err
	}
	n := 0
	if k.modules != nil {
		set, err := k.modules(initrdModules(p))
		switch {
		case errors.Is(err, kmod.ErrNotFound):
			return 0, p.Errorf("kernel.modules", "%v", err)
		case err != nil:
			return 0, p.At("kernel.modules", err)
		}
		if err := set.AddToTree(t, o.Epoch); err != nil {
			return 0, err
		}
		n = len(set.Load)
	}
	return n, initrd.WriteFile(ctx, name, t, initrd.Options{Compression: initrd.Compression(p.Kernel.InitrdCompression)})
}

func copyInto(esp *fat.FS, dst, src string) (int64, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := esp.WriteFile(dst, f, fi.Size()); err != nil {
		return 0, fmt.Errorf("copy %s to ESP %s: %w", src, dst, err)
	}
	return fi.Size(), nil
}

func treeContent(t *rootfs.Tree) int64 {
	var n int64
	_ = t.Walk(func(_ string, e *rootfs.Entry) error { n += e.Size; return nil })
	return n
}

func uuid16(seed []byte, purpose string) [16]byte {
	s := sha256.Sum256(append(append(bytes.Clone(seed), 0), purpose...))
	var u [16]byte
	copy(u[:], s[:16])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func volumeID(seed []byte) uint32 {
	s := sha256.Sum256(append(bytes.Clone(seed), "esp volume id"...))
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}
