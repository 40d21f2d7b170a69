package grub

import (
	"fmt"
	"strings"

	"keel/bootloader/internal/counted"
)

// MaxTries is the most trial boots GRUB counts: its script has no
// arithmetic, so grub.cfg counts down through a chain of comparisons.
const MaxTries = 9

// Config is keel's one grub.cfg, the same on every disk and never
// rewritten: it reads the slots' entries and grubenv, picks the newest
// generation among the slots that are blessed or have tries left, counts a
// trial boot in grubenv before booting it (save_env), and tells the
// kernel what it did (keel.loader=grub, keel.trial=<slot>+<left>-<done>).
// A slot whose counter cannot be saved is not booted as a trial: it would
// never run out of tries.
func Config() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# keel: GRUB's fixed configuration. Slot entries: %s, %s;", EntryPath("a"), EntryPath("b"))
	w("# their state in %s: S_OK=1 blessed, else S_TRY trial boots left (S_DONE made).", EnvPath)
	w("set timeout=0")
	w("serial --unit=0 --speed=115200")
	w("terminal_input console serial")
	w("terminal_output console serial")
	vars := []string{}
	for _, s := range counted.Slots {
		vars = append(vars, counted.OKVar(s), counted.TryVar(s), counted.DoneVar(s))
	}
	for _, v := range vars {
		w("set %s=0", v)
	}
	w("load_env --file %s %s", EnvPath, strings.Join(vars, " "))
	w("set keel_best=0")
	w("set keel_pick=")
	for _, s := range counted.Slots {
		w("set keel_%s_gen=0", s)
		w("if [ -f %s ]; then source %s; fi", EntryPath(s), EntryPath(s))
		w("if [ \"$%s\" = 1 -o \"$%s\" -gt 0 ]; then", counted.OKVar(s), counted.TryVar(s))
		w("  if [ \"$keel_%s_gen\" -gt \"$keel_best\" ]; then set keel_pick=%s; set keel_best=\"$keel_%s_gen\"; fi", s, s, s)
		w("fi")
	}
	w("if [ -z \"$keel_pick\" ]; then")
	w("  echo \"keel: no slot is blessed or has tries left; booting the newest entry\"")
	w("  if [ \"$keel_a_gen\" -gt \"$keel_b_gen\" ]; then set keel_pick=a; elif [ \"$keel_b_gen\" -gt 0 ]; then set keel_pick=b; fi")
	w("fi")
	for _, s := range counted.Slots {
		other := "b"
		if s == "b" {
			other = "a"
		}
		w("if [ \"$keel_pick\" = %s ]; then", s)
		w("  set keel_trial=")
		w("  if [ \"$%s\" != 1 -a \"$%s\" -gt 0 ]; then", counted.OKVar(s), counted.TryVar(s))
		// Count down and up without arithmetic.
		for n := MaxTries; n >= 1; n-- {
			kw := "elif"
			if n == MaxTries {
				kw = "if"
			}
			w("    %s [ \"$%s\" = %d ]; then set %s=%d", kw, counted.TryVar(s), n, counted.TryVar(s), n-1)
		}
		w("    fi")
		for n := MaxTries - 1; n >= 0; n-- {
			kw := "elif"
			if n == MaxTries-1 {
				kw = "if"
			}
			w("    %s [ \"$%s\" = %d ]; then set %s=%d", kw, counted.DoneVar(s), n, counted.DoneVar(s), n+1)
		}
		w("    fi")
		w("    if save_env --file %s %s %s; then", EnvPath, counted.TryVar(s), counted.DoneVar(s))
		w("      set keel_trial=\"keel.trial=%s+${%s}-${%s}\"", s, counted.TryVar(s), counted.DoneVar(s))
		w("    else")
		w("      echo \"keel: cannot save the try counter of slot %s; booting slot %s\"", s, other)
		w("      set keel_pick=%s", other)
		w("    fi")
		w("  fi")
		w("fi")
	}
	for _, s := range counted.Slots {
		w("if [ \"$keel_pick\" = %s ]; then", s)
		w("  echo \"keel: booting $keel_%s_title $keel_trial\"", s)
		w("  linux $keel_%s_linux $keel_%s_options keel.loader=grub $keel_trial", s, s)
		w("  initrd $keel_%s_initrd", s)
		w("  boot")
		w("fi")
	}
	w("echo \"keel: nothing to boot\"")
	return b.String()
}
