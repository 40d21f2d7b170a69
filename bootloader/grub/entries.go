package grub

import (
	"path"

	"keel/bootloader/internal/counted"
)

// Where GRUB's state lives on the ESP: per slot an entry file (GRUB script
// setting keel_<slot>_* variables) and the try counters in grubenv, the
// one file GRUB itself can write (save_env, in place). See package
// counted for the rules.
const (
	Dir     = "/grub"
	EnvPath = Dir + "/grubenv"
)

// EntryPath is slot's entry file.
func EntryPath(slot string) string { return path.Join(Dir, "entry-"+slot+".cfg") }

// Entries manages keel's GRUB entries and their grubenv counters.
var Entries = counted.Manager{F: counted.Format{
	StatePath: EnvPath, EntryPath: EntryPath,
	ParseState: ParseEnv, FormatState: FormatEnv,
	// GRUB script, each value single-quoted: no expansion inside.
	Set: "set ", Quote: "'",
	MaxTries: MaxTries,
}}
