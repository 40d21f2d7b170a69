package main

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"keel/image/build"
	"keel/image/build/buildcache"
	"keel/image/bundle"
	"keel/image/format"
	"keel/profiles"
)

type buildOptions struct {
	output  string
	workers int
	signKey string
	debian  debianFlags
	sshKeys []string
	sshUser string
	layers  layerFlags
	sb      sbFlags
	format  string
	size    string
	noCache bool
}

func newBuildCmd(g *globals) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [PROFILE]",
		Short: "Build a bootable A/B disk image from a profile",
		Long: `Compile PROFILE into a raw GPT disk image: an ESP with the boot loader
(boot.loader: systemd-boot, grub or u-boot) and the entry for slot A, the root squashfs in slot A, an empty slot B, and an ext4
data partition mounted at /var.

PROFILE is a profile file, or the name of a built-in profile (keel profiles
lists them); with none, keel builds the built-in "minimal" into
./minimal.img. Debian packages (packages:, kernel.package) come from the
profile's debian.suite, through the mirror given by --mirror,
$KEEL_DEBIAN_MIRROR, the profile's debian.mirror or, by default, the build
host's apt sources; they are checked against the repository's signed
InRelease and cached in $KEEL_CACHE/deb. When PROFILE.lock exists (written
by keel lock), the build uses exactly the packages it lists, from the cache
when they are there, and refuses a profile that asks for others.

--format writes the disk as qcow2, vmdk (monolithicSparse) or vhdx (dynamic)
instead of raw, converted by keel itself; the default output name then ends
in the format's extension. --size makes the disk that large (overriding the
profile's disk.size): the partitions keep their sizes, the backup GPT goes
to the end of the disk and the space after the data partition stays free.

The image is written to a temporary file beside the output and renamed into
place only when the build succeeded. With --sign-key, the update bundle of
the same build is written beside it as NAME-VERSION.keel (see keel key
generate and keel bundle inspect). Two builds of the same profile with the
same inputs give identical bytes: every timestamp is SOURCE_DATE_EPOCH (0 when
unset), every GUID is derived from the profile's name.

Verified boot: disk.verity in the profile puts a dm-verity hash tree after
the root squashfs in its slot and the root hash on the command line of the
slot's unified kernel image (boot.uki). --sb-key and --sb-cert sign
systemd-boot and that image for Secure Boot; --sb-keys DIR (from keel
secureboot keys NAME) also leaves DIR's PK, KEK and db on the ESP, which
systemd-boot enrolls on a machine in setup mode.

` + exitCodesHelp,
		Example: `  keel build                                   # the built-in minimal profile → ./minimal.img
  keel build server --ssh-key ~/.ssh/id_ed25519.pub
  keel build profiles/examples/busybox.yaml -o out/busybox.img
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) keel build my.yaml -o my.img
  keel build my.yaml -o out/my.img --sign-key release.key   # also out/NAME-VERSION.keel
  keel build my.yaml --sb-keys my-secureboot                # signed for, and enrolling, my keys
  keel build my.yaml --format qcow2 --size 20GiB            # ./NAME.qcow2, a 20GiB disk`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, lockPath, err := loadProfile(args)
			if err != nil {
				return err
			}
			if err := addSSHKeys(p, o.sshKeys, o.sshUser); err != nil {
				return err
			}
			imgFormat, err := format.ParseFormat(o.format)
			if err != nil {
				return usagef("--format: %v", err)
			}
			if err := setDiskSize(p, o.size); err != nil {
				return err
			}
			// Read the key first: a bad key path should not cost a build.
			var key ed25519.PrivateKey
			if o.signKey != "" {
				if key, err = bundle.ReadPrivateKey(o.signKey); err != nil {
					return usageError{err}
				}
			}
			sb, err := o.sb.options()
			if err != nil {
				return err
			}
			epoch, err := sourceDateEpoch()
			if err != nil {
				return usageError{err}
			}
			epoch = max(epoch, 0)
			if o.output == "" {
				o.output = p.Name + imgFormat.Ext()
			}
			if err := checkOutput(o.output, p.Files, lockPath); err != nil {
				return err
			}
			if dir := filepath.Dir(o.output); dir != "." {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
			}
			init, err := keelInit(ctx, p.Arch)
			if err != nil {
				return err
			}
			ctl, err := keelctl(ctx, p.Arch)
			if err != nil {
				return err
			}
			deb, err := o.debian.options(lockPath)
			if err != nil {
				return err
			}
			images, err := newImageApplier(g, p.Arch, o.layers)
			if err != nil {
				return err
			}
			// The layers' file contents are spooled for this build only:
			// once the image is written they go, whatever happened.
			defer images.close()
			// Another format is converted from the raw image, built
			// beside the output under a temporary name that goes in
			// the end, whatever happened.
			rawOut := o.output
			if imgFormat != format.Raw {
				if rawOut, err = tempBeside(o.output, ".raw"); err != nil {
					return err
				}
				defer os.Remove(rawOut)
			}
			bo := build.Options{
				Output: rawOut, KeelInit: init, Keelctl: ctl, ApplyImage: images.apply,
				Epoch: epoch, Workers: o.workers, Logger: g.logger(), Progress: stageProgress(),
				SignKey: key, Debian: deb, SecureBoot: sb,
			}
			if !o.noCache {
				if bo.Cache, bo.ToolID, err = openBuildCache(g); err != nil {
					return err
				}
				defer bo.Cache.Close()
			}
			res, err := build.Build(ctx, p, bo)
			if err != nil {
				return err
			}
			if imgFormat != format.Raw {
				if err := convertImage(ctx, rawOut, o.output, imgFormat, stageProgress()); err != nil {
					return err
				}
				res.Output = o.output
			}
			printSummary(cmd, p, res, imgFormat, g.verbose)
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "disk image to write (default NAME.img, or NAME.FORMAT with --format)")
	cmd.Flags().StringVar(&o.format, "format", "raw", "disk image format: "+strings.Join(format.Names(), ", "))
	cmd.Flags().StringVar(&o.size, "size", "", "disk size, e.g. 20GiB (default: the profile's disk.size, or just big enough)")
	cmd.Flags().StringVar(&o.layers.maxSize, "layer-max-size", "", "most bytes one OCI layer may expand to (default: 16GiB, and no more than 100 x its compressed size or 1GiB, whichever is more; setting it drops the ratio bound)")
	cmd.Flags().Int64Var(&o.layers.maxEntries, "layer-max-entries", 0, "most entries one OCI layer may hold (default 1048576)")
	cmd.Flags().BoolVar(&o.noCache, "no-build-cache", false, "build everything again: neither reuse nor keep an image in $KEEL_CACHE/build")
	cmd.Flags().IntVar(&o.workers, "workers", 0, "compressing goroutines (0: one per CPU)")
	cmd.Flags().StringVar(&o.signKey, "sign-key", "", "private key file: also write the signed update bundle NAME-VERSION.keel")
	cmd.Flags().StringArrayVar(&o.sshKeys, "ssh-key", nil, "public key file (or key line) to add to --ssh-user's authorized keys; repeatable")
	cmd.Flags().StringVar(&o.sshUser, "ssh-user", "keel", "the profile's user that --ssh-key keys are for")
	o.sb.register(cmd)
	o.debian.register(cmd, true)
	return cmd
}

// stageProgress prints each build stage on a terminal, with a percentage
// while the root filesystem is written.
func stageProgress() func(stage string, done, total int64) {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	bar := progress(os.Stderr)
	last := ""
	return func(stage string, done, total int64) {
		if stage != last {
			last = stage
			fmt.Fprintf(os.Stderr, "• %s\n", stage)
		}
		if total > 0 && bar != nil {
			bar(done, total)
		}
	}
}

func printSummary(cmd *cobra.Command, p *profiles.Profile, r *build.Result, f format.Format, verbose bool) {
	w := cmd.OutOrStdout()
	cached := ""
	if r.Cached {
		cached = " (unchanged inputs: the cached image)"
	}
	fmt.Fprintf(w, "built %s: %s %s in %s%s\n", r.Output, p.Name, p.Version, r.Duration.Round(1e6), cached)
	if r.Packages > 0 {
		fmt.Fprintf(w, "  %d Debian packages from %s, %s downloaded", r.Packages, p.Debian.Suite, human(r.Downloaded))
		if r.LockWritten != "" {
			fmt.Fprintf(w, ", lock written to %s", r.LockWritten)
		}
		fmt.Fprintln(w)
		if len(r.PackageWarnings) > 0 && !verbose {
			fmt.Fprintf(w, "  %d maintainer-script commands not applied (keel build -v lists them)\n", len(r.PackageWarnings))
		}
		if verbose {
			for _, warn := range r.PackageWarnings {
				fmt.Fprintf(w, "  not applied: %s\n", warn)
			}
		}
	}
	if len(r.Reused) > 0 {
		fmt.Fprintf(w, "  from the build cache: %s\n", strings.Join(r.Reused, ", "))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tlabel\tstart\tsize\tcontent")
	for _, part := range r.Layout.Partitions {
		content := ""
		switch part.Label {
		case "esp":
			content = fmt.Sprintf("%s, kernel %s, initrd %s (%d modules)", p.Boot.Loader, human(r.KernelBytes), human(r.InitrdBytes), r.Modules)
			if r.UKIBytes > 0 {
				content = fmt.Sprintf("%s, unified kernel image %s (%d modules)", p.Boot.Loader, human(r.UKIBytes), r.Modules)
			}
		case "bios-boot":
			content = "GRUB's core.img, for BIOS (boot.img in the MBR)"
		case "root-a":
			ratio := 100 * float64(r.SquashfsBytes) / float64(max(r.ContentBytes, 1))
			content = fmt.Sprintf("squashfs %s (%s) of %s, %.1f%%, %d inodes", human(r.SquashfsBytes), p.Disk.Squashfs.Compression, human(r.ContentBytes), ratio, r.Inodes)
			if r.Verity != nil {
				content += fmt.Sprintf(", verity tree %s, root hash %x", human(r.Verity.HashSize), r.Verity.RootHash)
			}
		case "root-b":
			content = "empty until the first update"
		case "data":
			content = "ext4, mounted at /var"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", part.Number, part.Label, profiles.Size(part.Start), profiles.Size(part.Size), content)
	}
	tw.Flush()
	if f == format.Raw {
		fmt.Fprintf(w, "disk %s; boot it with: keel run %s\n", profiles.Size(r.Layout.Size), shellQuote(r.Output))
	} else {
		fmt.Fprintf(w, "disk %s, written as %s; boot it with: keel run %s (keel inspect takes raw images only)\n", profiles.Size(r.Layout.Size), f, shellQuote(r.Output))
	}
	if r.Bundle != "" {
		fmt.Fprintf(w, "update bundle %s, build id %s\n", r.Bundle, r.BuildID)
	} else {
		fmt.Fprintln(w, "no update bundle: pass --sign-key KEY to write one (make a key with: keel key generate NAME)")
	}
}

func shellQuote(s string) string {
	if strings.ContainsAny(s, " '\"$\\") {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}

// openBuildCache opens $KEEL_CACHE/build and identifies this keel by the
// hash of its own binary, which holds its code and the keel-init and
// keelctl it embeds: an entry made by any other keel never matches.
func openBuildCache(g *globals) (*buildcache.Cache, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("build cache: %w", err)
	}
	c, err := buildcache.Open(filepath.Join(cacheDir(), "build"), g.logger())
	if err != nil {
		return nil, "", err
	}
	sum, err := c.FileSum(exe)
	if err != nil {
		return nil, "", fmt.Errorf("build cache: hashing %s: %w", exe, err)
	}
	return c, version + " " + sum, nil
}
