// Package uboot is keel's U-Boot backend, for aarch64 boards booted by
// U-Boot without UEFI (DESIGN §4). U-Boot is the board's firmware, not on
// the disk: keel writes a boot script, /boot.scr on the ESP (the FAT
// partition U-Boot's distro boot scans), compiled by keel. The script
// reads the slots' entry files and the try counters in /uboot/state.env,
// a U-Boot environment block (CRC then variables: what `env import -c`
// reads and `env export -c` writes), counts a trial boot there with
// fatwrite before booting it, and boots the newest generation that is
// blessed or has tries left. keelctl and keel-init read and write the same
// block in Go (ubootenv).
package uboot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"keel/bootloader"
	"keel/bootloader/internal/counted"
	"keel/bootloader/uboot/script"
	"keel/bootloader/uboot/ubootenv"
)

// Name is the name this loader registers under.
const Name = "u-boot"

// Where the state lives on the ESP.
const (
	Dir        = "/uboot"
	StatePath  = Dir + "/state.env"
	ScriptPath = "/boot.scr"
	// StateSize is the environment block's size: one 4 KiB cluster, so
	// U-Boot's fatwrite rewrites it with one contiguous write.
	StateSize = 0x1000
	// MaxTries: U-Boot's setexpr writes hexadecimal, which is decimal up
	// to 9 (the done count never passes the tries).
	MaxTries = 9
)

// EntryPath is slot's entry file: variables in U-Boot's text format, for
// `env import -t`.
func EntryPath(slot string) string { return path.Join(Dir, "entry-"+slot+".txt") }

func parseState(b []byte) (map[string]string, error) {
	e, err := ubootenv.Parse(b, StateSize, false)
	if err != nil {
		return nil, err
	}
	return e.Vars, nil
}

func formatState(vars map[string]string) ([]byte, error) {
	return (&ubootenv.Env{Vars: vars}).Marshal(StateSize)
}

// Entries manages keel's U-Boot entries and their counters.
var Entries = counted.Manager{F: counted.Format{
	StatePath: StatePath, EntryPath: EntryPath,
	ParseState: parseState, FormatState: formatState,
	MaxTries: MaxTries,
}}

func init() {
	bootloader.Register(Name, bootloader.Backend{
		New:      FromSource,
		Packages: func(string) []string { return nil },
		Manager:  Entries,
	})
}

// Loader writes keel's boot script for U-Boot.
type Loader struct {
	counted.Manager
	arch string // mkimage's name
}

// FromSource makes the loader for src.Arch; it needs no files.
func FromSource(src bootloader.Source) (bootloader.Bootloader, error) {
	if src.EFI != "" {
		return nil, errors.New("u-boot: boot.efi is systemd-boot's binary")
	}
	switch src.Arch {
	case "aarch64":
		return &Loader{Manager: Entries, arch: "arm64"}, nil
	}
	return nil, fmt.Errorf("u-boot: keel writes U-Boot scripts for aarch64, not %s", src.Arch)
}

// Install writes the compiled boot script and a state with no slot
// bootable (the build's first WriteEntry blesses slot a).
func (l *Loader) Install(esp bootloader.ESP) error {
	scr, err := script.Compile([]byte(Script()), "keel boot script", l.arch, 0)
	if err != nil {
		return err
	}
	state, err := formatState(counted.InitialState())
	if err != nil {
		return err
	}
	if err := esp.Mkdir(Dir); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("install U-Boot script: mkdir %s: %w", Dir, err)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{ScriptPath, scr}, {StatePath, state}} {
		if err := esp.WriteFile(f.path, bytes.NewReader(f.data), int64(len(f.data))); err != nil {
			return fmt.Errorf("install U-Boot script: %w", err)
		}
	}
	return nil
}

// Script is keel's boot script, the same on every disk and never
// rewritten. It runs from distro boot, which sets devtype, devnum and
// distro_bootpart to where it found the script.
func Script() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	dev := "${devtype} ${devnum}:${distro_bootpart}"
	var vars []string
	for _, s := range counted.Slots {
		vars = append(vars, counted.OKVar(s), counted.TryVar(s), counted.DoneVar(s))
	}
	w("# keel: U-Boot's fixed boot script. Slot entries: %s, %s;", EntryPath("a"), EntryPath("b"))
	w("# their state in %s: S_OK=1 blessed, else S_TRY trial boots left (S_DONE made).", StatePath)
	w("if test -z \"${devtype}\"; then setenv devtype virtio; setenv devnum 0; setenv distro_bootpart 1; fi")
	for _, v := range vars {
		w("setenv %s 0", v)
	}
	w("if load %s ${loadaddr} %s; then env import -c ${loadaddr} 0x%x %s; fi", dev, StatePath, StateSize, strings.Join(vars, " "))
	w("setenv keel_best 0")
	w("setenv keel_pick")
	for _, s := range counted.Slots {
		names := []string{}
		for _, k := range []string{"gen", "title", "linux", "initrd", "options"} {
			names = append(names, "keel_"+s+"_"+k)
		}
		w("setenv keel_%s_gen 0", s)
		w("if load %s ${loadaddr} %s; then env import -t ${loadaddr} ${filesize} %s; fi", dev, EntryPath(s), strings.Join(names, " "))
		w("if test -z \"${keel_%s_gen}\"; then setenv keel_%s_gen 0; fi", s, s)
		w("if test \"${%s}\" = 1 || test \"${%s}\" -gt 0; then", counted.OKVar(s), counted.TryVar(s))
		w("  if test \"${keel_%s_gen}\" -gt \"${keel_best}\"; then setenv keel_pick %s; setenv keel_best ${keel_%s_gen}; fi", s, s, s)
		w("fi")
	}
	w("if test -z \"${keel_pick}\"; then")
	w("  echo \"keel: no slot is blessed or has tries left; booting the newest entry\"")
	w("  if test \"${keel_a_gen}\" -gt \"${keel_b_gen}\"; then setenv keel_pick a; elif test \"${keel_b_gen}\" -gt 0; then setenv keel_pick b; fi")
	w("fi")
	w("setenv keel_trial")
	for _, s := range counted.Slots {
		other := "b"
		if s == "b" {
			other = "a"
		}
		ok, try, done := counted.OKVar(s), counted.TryVar(s), counted.DoneVar(s)
		w("if test \"${keel_pick}\" = %s && test \"${%s}\" != 1 && test \"${%s}\" -gt 0; then", s, ok, try)
		w("  setexpr %s ${%s} - 1", try, try)
		w("  setexpr %s ${%s} + 1", done, done)
		w("  env export -c -s 0x%x ${loadaddr} %s", StateSize, strings.Join(vars, " "))
		w("  if fatwrite %s ${loadaddr} %s 0x%x; then", dev, StatePath, StateSize)
		w("    setenv keel_trial keel.trial=%s+${%s}-${%s}", s, try, done)
		w("  else")
		w("    echo \"keel: cannot save the try counter of slot %s; booting slot %s\"", s, other)
		w("    setenv keel_pick %s", other)
		w("  fi")
		w("fi")
	}
	for _, s := range counted.Slots {
		w("if test \"${keel_pick}\" = %s; then", s)
		w("  echo \"keel: booting ${keel_%s_title} ${keel_trial}\"", s)
		w("  setenv bootargs \"${keel_%s_options} keel.loader=%s ${keel_trial}\"", s, Name)
		w("  load %s ${kernel_addr_r} ${keel_%s_linux}", dev, s)
		w("  load %s ${ramdisk_addr_r} ${keel_%s_initrd}", dev, s)
		w("  booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}")
		w("fi")
	}
	w("echo \"keel: nothing to boot\"")
	return b.String()
}
