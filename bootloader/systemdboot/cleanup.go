package systemdboot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"keel/bootloader"
)

// Cleanup removes what a cut during an install, a bless or a rollback left
// on the ESP (DESIGN §4): temporary files (*.tmp), entries taken out of use
// but not deleted (*.del), empty or half-written entries (no linux or efi
// line), and all but one entry per slot (the newest; see sortEntries). An
// entry with a kernel or an EFI image but a damaged version, or with both
// (ErrDamagedEntry), is left where it is and reported: the loader may boot
// it. Leftovers of either kind of slot files (vmlinuz.tmp, initrd.tmp,
// keel.efi.tmp) are handled alike.
//
// vfat is not crash-atomic: after a cut during a rename, the old and the new
// name can share clusters. Deleting one would free clusters the other still
// uses. So a leftover whose content is a prefix of (or equal to) the file it
// was renamed to or duplicates is never deleted: it is renamed to *.stale,
// which no loader reads and Cleanup leaves for fsck. Only content that cannot
// be shared is deleted.
func (m Entries) Cleanup(esp bootloader.DirESP) ([]string, error) {
	var done []string
	dirs := []string{EntriesDir, "/loader", "/EFI/BOOT", "/EFI/systemd", "/keel"}
	if names, err := esp.ReadDir("/keel"); err == nil {
		for _, s := range names {
			// The slots' directories; /keel also holds files (bootloader.NameFile).
			if s == "a" || s == "b" {
				dirs = append(dirs, path.Join("/keel", s))
			}
		}
	}
	for _, d := range dirs {
		names, err := esp.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("cleanup %s: %w", d, err)
		}
		for _, n := range names {
			base, leftover := strings.CutSuffix(n, tmpSuffix)
			if !leftover {
				base, leftover = strings.CutSuffix(n, delSuffix)
			}
			if !leftover {
				continue
			}
			p := path.Join(d, n)
			what, err := discard(esp, p, path.Join(d, base))
			if err != nil {
				return done, fmt.Errorf("cleanup: %w", err)
			}
			done = append(done, what)
		}
	}
	more, err := m.cleanEntries(esp)
	done = append(done, more...)
	if err != nil {
		return done, fmt.Errorf("cleanup: %w", err)
	}
	if len(done) > 0 {
		if err := esp.Sync(); err != nil {
			return done, fmt.Errorf("cleanup: %w", err)
		}
	}
	return done, nil
}

// cleanEntries handles *.conf files: empty or damaged keel entries, and
// duplicates of a slot.
func (m Entries) cleanEntries(esp bootloader.DirESP) ([]string, error) {
	names, err := esp.ReadDir(EntriesDir)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, n := range names {
		if !strings.HasPrefix(n, "keel-") || !strings.HasSuffix(n, ".conf") {
			continue
		}
		p := path.Join(EntriesDir, n)
		b, err := esp.ReadFile(p)
		if err != nil {
			return done, err
		}
		if _, err := ParseEntry(n, b); err == nil || errors.Is(err, ErrDamagedEntry) {
			continue // a damaged entry is reported below and left alone
		}
		what, err := discard(esp, p, "")
		if err != nil {
			return done, err
		}
		done = append(done, what)
	}
	es, damaged, err := m.entries(esp)
	if err != nil {
		return done, err
	}
	for _, d := range damaged {
		done = append(done, fmt.Sprintf("left %v alone: which slot boots is unknown", d))
	}
	keep := map[string]string{} // slot → kept entry's path
	for _, e := range es {
		p := path.Join(EntriesDir, e.File)
		k, dup := keep[e.Slot]
		if !dup {
			keep[e.Slot] = p
			continue
		}
		what, err := discard(esp, p, k)
		if err != nil {
			return done, err
		}
		done = append(done, what)
	}
	return done, nil
}

// discard gets rid of the leftover p: deleted if empty or if its content
// cannot share clusters with the live file (may be ""), else renamed to
// *.stale. It returns what it did, for the log.
func discard(esp bootloader.DirESP, p, live string) (string, error) {
	b, err := esp.ReadFile(p)
	if err != nil {
		return discardUnreadable(esp, p, live, err)
	}
	shared := len(b) > 0 // a damaged entry: its clusters are anyone's guess
	if live != "" && len(b) > 0 {
		l, err := esp.ReadFile(live)
		shared = err == nil && len(l) > 0 && (bytes.HasPrefix(l, b) || bytes.HasPrefix(b, l))
	}
	if shared {
		stale := staleName(esp, p)
		if err := esp.Rename(p, stale); err != nil {
			return "", fmt.Errorf("rename %s to %s: %w", p, stale, err)
		}
		if live == "" {
			return "kept damaged " + p + " as " + stale, nil
		}
		return "kept " + p + " as " + stale + " (may share clusters with " + live + ")", nil
	}
	if !strings.HasSuffix(p, delSuffix) && !strings.HasSuffix(p, tmpSuffix) {
		// A name the loader reads: out of its sight first, then delete.
		del := p + delSuffix
		if err := esp.Rename(p, del); err != nil {
			return "", fmt.Errorf("rename %s to %s: %w", p, del, err)
		}
		if err := esp.Sync(); err != nil {
			return "", err
		}
		p = del
	}
	if err := esp.Remove(p); err != nil {
		return "", fmt.Errorf("remove %s: %w", p, err)
	}
	return "removed " + p, nil
}

// discardUnreadable gets rid of a leftover that cannot be read. A cut
// during a vfat fsync leaves one: Linux writes the directory entry (size,
// first cluster) before the FAT chain, so the size runs past the chain
// (espdir.Mount). Its clusters came from free ones, so it shares them
// with nobody unless it was being renamed: with a live file beside it,
// it is set aside as *.stale; alone, it is removed, the driver freeing its
// chain as far as it goes.
func discardUnreadable(esp bootloader.DirESP, p, live string, readErr error) (string, error) {
	if errors.Is(readErr, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", p, readErr)
	}
	if live != "" {
		if _, err := esp.ReadFile(live); !errors.Is(err, fs.ErrNotExist) {
			stale := staleName(esp, p)
			if err := esp.Rename(p, stale); err != nil {
				return "", fmt.Errorf("rename unreadable %s to %s: %w", p, stale, err)
			}
			return fmt.Sprintf("kept unreadable %s as %s (%v)", p, stale, readErr), nil
		}
	}
	if err := esp.Remove(p); err != nil {
		return "", fmt.Errorf("remove unreadable %s (%v): %w", p, readErr, err)
	}
	return fmt.Sprintf("removed unreadable %s (%v)", p, readErr), nil
}

// staleName is a free *.stale name for p: renaming over another .stale
// would free its clusters.
func staleName(esp bootloader.DirESP, p string) string {
	stale := strings.TrimSuffix(p, tmpSuffix) + staleSuffix
	for i := 1; ; i++ {
		if _, err := esp.ReadFile(stale); errors.Is(err, fs.ErrNotExist) {
			return stale
		}
		stale = fmt.Sprintf("%s%s.%d", strings.TrimSuffix(p, tmpSuffix), staleSuffix, i)
	}
}
