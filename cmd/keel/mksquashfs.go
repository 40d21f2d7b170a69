package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"keel/rootfs"
	"keel/rootfs/hostfs"
	"keel/rootfs/squashfs"
)

type mksquashfsOptions struct {
	comp    string
	level   int
	bcj     bool
	block   int
	allRoot bool
	workers int
	noXattr bool
	noExp   bool
	mtime   int64
}

func newMksquashfsCmd(g *globals) *cobra.Command {
	o := &mksquashfsOptions{}
	cmd := &cobra.Command{
		Use:   "mksquashfs SRC_DIR OUT",
		Short: "Write a host directory as a squashfs image with keel's writer",
		Long: `Read SRC_DIR into keel's tree model — ownership, modes, xattrs (user.,
trusted., security.), device numbers and hard links as on the host, unless
--all-root — and write it as a squashfs 4.0 image to OUT.

Data blocks are compressed on all cores; the image is byte-identical whatever
--workers is. Duplicate files are stored once, small files and file tails are
packed into fragments, all-zero blocks are stored sparse. OUT is written under
a temporary name and renamed into place only on success.

Compressor levels, each giving a different image: zstd 1, 3, 7 or 11
(default 3; keel's pure-Go zstd has four strengths, named by the zstd levels
they approximate), xz 6 (keel's pure-Go LZMA2 encoder has one strength), gzip
1..9 (default 9). Other levels are refused.`,
		Example: `  keel mksquashfs ./rootfs root.squashfs
  keel mksquashfs --comp xz --xz-bcj ./rootfs root.squashfs
  keel mksquashfs --all-root --mtime 0 ./rootfs root.squashfs`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			log := g.logger()
			start := time.Now()
			tree, err := hostfs.Load(ctx, args[0], hostfs.Options{AllRoot: o.allRoot, NoXattrs: o.noXattr, Logger: log})
			if err != nil {
				return err
			}
			if o.mtime < 0 {
				if o.mtime, err = sourceDateEpoch(); err != nil {
					return usageError{err}
				}
			}
			if o.mtime >= 0 {
				_ = tree.Walk(func(_ string, e *rootfs.Entry) error { e.Mtime = o.mtime; return nil })
			}
			workers := o.workers
			if workers <= 0 {
				workers = runtime.GOMAXPROCS(0)
			}
			opts := squashfs.Options{
				Compression: squashfs.Compression(o.comp),
				Level:       o.level,
				XZBCJ:       o.bcj,
				BlockSize:   o.block,
				Workers:     workers,
				NoExport:    o.noExp,
				Logger:      log,
			}
			if o.mtime >= 0 {
				opts.ModTime = uint32(o.mtime)
			}
			if err := opts.Validate(); err != nil {
				return usageError{err}
			}
			opts.Progress = progress(os.Stderr)
			// The writer's reader and in-order writer run beside the
			// compressing workers. With a P each, a thread the kernel
			// deschedules on a busy machine stalls only its own stage,
			// not a worker's queue (mksquashfs likewise has a thread per
			// stage): measured under a load of 5-9 on 2 cores, zstd-3
			// took 0.7x the wall time. On an idle machine the extra Ps
			// are mostly blocked and change nothing.
			runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), workers+2))
			st, err := squashfs.WriteFile(ctx, args[1], tree, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d inodes, %s of content → %s (%.1f%%), %d duplicates, %d fragments, %s\n",
				args[1], st.Inodes, human(st.ContentBytes), human(st.Bytes),
				100*float64(st.Bytes)/float64(max(st.ContentBytes, 1)), st.Duplicates, st.Fragments,
				time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.comp, "comp", "zstd", "compressor: zstd, xz or gzip")
	f.IntVar(&o.level, "level", 0, "compression level (0: the compressor's default)")
	f.BoolVar(&o.bcj, "xz-bcj", false, "with xz, try the x86 BCJ filter on every block and keep the smaller result")
	f.IntVarP(&o.block, "block-size", "b", squashfs.DefaultBlockSize, "data block size in bytes (power of two, 4096..1048576)")
	f.BoolVar(&o.allRoot, "all-root", false, "make every entry owned by root:root")
	f.IntVar(&o.workers, "workers", 0, "compressing goroutines (0: one per CPU)")
	f.BoolVar(&o.noXattr, "no-xattrs", false, "do not store extended attributes")
	f.BoolVar(&o.noExp, "no-export", false, "leave out the NFS export table")
	f.Int64Var(&o.mtime, "mtime", -1, "set every entry's and the image's mtime to this (seconds since the epoch; default: SOURCE_DATE_EPOCH if set, else keep the host's)")
	return cmd
}

// sourceDateEpoch returns SOURCE_DATE_EPOCH, or -1 when it is unset.
func sourceDateEpoch() (int64, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a non-negative integer", v)
	}
	return n, nil
}
