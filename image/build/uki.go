package build

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"keel/bootloader"
	"keel/bootloader/secureboot"
	"keel/bootloader/uki"
	"keel/profiles"
	"keel/rootfs"
	"keel/rootfs/deb/source"
	"keel/rootfs/verity"
)

// SecureBoot is what keel build signs for the firmware with, and the keys
// it leaves for systemd-boot to enroll.
type SecureBoot struct {
	Key  crypto.Signer
	Cert *x509.Certificate
	// Enroll, when set, holds PK.auth, KEK.auth and db.auth: written to
	// systemdboot.EnrollDir with "secure-boot-enroll force", so a machine
	// in setup mode ends up enforcing them from its second boot.
	Enroll map[string][]byte
}

// sign is Authenticode with the build's key.
func (sb *SecureBoot) sign(pe []byte) ([]byte, error) {
	return secureboot.Sign(pe, sb.Key, sb.Cert)
}

// ukiCmdline is the command line signed into a UKI. It names no partition
// and no slot: keel-init takes the slot from the entry systemd-boot booted
// (LoaderEntrySelected) and the root from the slot's partition label, so
// one signed image boots from either slot. With verity, the root hash and
// where the tree starts bind the root's every block to this file.
func ukiCmdline(p *profiles.Profile, init string, v *verity.Info) string {
	var f []string
	if v != nil {
		f = append(f, "roothash="+hex.EncodeToString(v.RootHash), "keel.verity="+strconv.FormatInt(v.HashOffset, 10))
	}
	if init != "" {
		f = append(f, "init="+init)
	}
	if p.Kernel.Cmdline != "" {
		f = append(f, p.Kernel.Cmdline)
	}
	return strings.Join(f, " ")
}

// makeUKI puts kernel, initrd, command line, os-release and the kernel's
// release on systemd's stub, signed when sb is set.
func makeUKI(p *profiles.Profile, prep *source.Prepared, tree *rootfs.Tree, kernelPath, initrdPath, cmdline string, sb *SecureBoot) ([]byte, error) {
	stub, err := stubBytes(p, prep)
	if err != nil {
		return nil, err
	}
	kernel, err := os.ReadFile(kernelPath)
	if err != nil {
		return nil, err
	}
	initrd, err := os.ReadFile(initrdPath)
	if err != nil {
		return nil, err
	}
	osrel, err := fs.ReadFile(tree.FS(), "etc/os-release")
	if err != nil {
		return nil, fmt.Errorf("unified kernel image: os-release: %w", err)
	}
	s := uki.Sections{Linux: kernel, Initrd: initrd, Cmdline: []byte(cmdline), OSRel: osrel}
	if r := kernelRelease(kernel); r != "" {
		s.Uname = []byte(r)
	}
	pe, err := uki.Build(stub, s)
	if err != nil {
		return nil, fmt.Errorf("unified kernel image: %w", err)
	}
	if sb != nil {
		if pe, err = sb.sign(pe); err != nil {
			return nil, fmt.Errorf("sign unified kernel image: %w", err)
		}
	}
	return pe, nil
}

// stubBytes finds systemd's UKI stub where the loader comes from: the
// profile's boot.stub, the systemd-boot-efi package of a Debian build, or
// the build host.
func stubBytes(p *profiles.Profile, prep *source.Prepared) ([]byte, error) {
	if p.Boot.Stub == "" && prep != nil && prep.Stub != nil {
		r, err := prep.Stub.Content()
		if err != nil {
			return nil, fmt.Errorf("UKI stub from %s: %w", source.LoaderPackage, err)
		}
		defer r.Close()
		return io.ReadAll(r)
	}
	path := p.Boot.Stub
	if path == "" {
		path = source.StubPath
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && p.Boot.Stub == "" {
		return nil, p.Errorf("boot.uki", "systemd's UKI stub is not at %s: install the systemd-boot-efi package or set boot.stub", path)
	}
	if err != nil {
		return nil, p.Errorf("boot.stub", "%v", err)
	}
	return b, nil
}

// kernelRelease reads the release string an x86 bzImage carries (boot
// protocol 2.00+: kernel_version at 0x20e points 0x200 before it), for the
// UKI's .uname. "" when it is not there.
func kernelRelease(k []byte) string {
	if len(k) < 0x210 || string(k[0x202:0x206]) != "HdrS" {
		return ""
	}
	off := int(binary.LittleEndian.Uint16(k[0x20e:])) + 0x200
	if off >= len(k) {
		return ""
	}
	s := k[off:min(len(k), off+256)]
	if i := bytes.IndexAny(s, " \x00"); i >= 0 {
		s = s[:i]
	}
	return string(s)
}

// signedLoader is a boot loader that can be signed for Secure Boot and
// have it enroll keys (systemd-boot).
type signedLoader interface {
	Sign(sign func([]byte) ([]byte, error)) error
	EnrollKeys(files map[string][]byte)
}

// secureBootLoader signs the loader binary and arranges enrollment.
func secureBootLoader(p *profiles.Profile, b bootloader.Bootloader, sb *SecureBoot) error {
	if sb == nil {
		return nil
	}
	l, ok := b.(signedLoader)
	if !ok {
		return p.Errorf("boot.loader", "keel signs only systemd-boot for Secure Boot, not %s", p.Boot.Loader)
	}
	if err := l.Sign(sb.sign); err != nil {
		return fmt.Errorf("sign systemd-boot: %w", err)
	}
	if sb.Enroll != nil {
		l.EnrollKeys(sb.Enroll)
	}
	return nil
}
