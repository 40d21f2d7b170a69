package uboot

import (
	"bytes"
	"strings"
	"testing"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/bootloader/internal/counted"
	"keel/bootloader/uboot/ubootenv"
)

func TestInstall(t *testing.T) {
	if _, err := FromSource(bootloader.Source{Arch: "x86_64"}); err == nil {
		t.Error("a U-Boot script for x86_64: no error")
	}
	l, err := FromSource(bootloader.Source{Arch: "aarch64"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	esp := espdir.Dir{Root: dir}
	if err := l.Install(esp); err != nil {
		t.Fatal(err)
	}
	scr, _ := esp.ReadFile(ScriptPath)
	// A script uImage: magic, then the script after the header and the
	// length list.
	if len(scr) < 72 || !bytes.Equal(scr[:4], []byte{0x27, 0x05, 0x19, 0x56}) || !bytes.HasPrefix(scr[72:], []byte("# keel: U-Boot's fixed boot script")) {
		t.Errorf("boot.scr is not a script image: % x", scr[:min(len(scr), 80)])
	}
	state, _ := esp.ReadFile(StatePath)
	e, err := ubootenv.Parse(state, StateSize, false)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range counted.InitialState() {
		if e.Vars[k] != v {
			t.Errorf("initial state %s=%q, want %q", k, e.Vars[k], v)
		}
	}
}

// TestScriptCountsBeforeBooting: for each slot, the script saves the
// decremented counter before it boots a trial, and falls back to the
// other slot when it cannot.
func TestScriptCountsBeforeBooting(t *testing.T) {
	s := Script()
	for _, slot := range counted.Slots {
		count := strings.Index(s, "setexpr "+slot+"_TRY ${"+slot+"_TRY} - 1")
		save := strings.Index(s[max(count, 0):], "fatwrite ${devtype} ${devnum}:${distro_bootpart} ${loadaddr} "+StatePath)
		boot := strings.Index(s, "setenv bootargs \"${keel_"+slot+"_options} keel.loader=u-boot ${keel_trial}\"")
		if count < 0 || save < 0 || boot < count+save {
			t.Errorf("slot %s: count at %d, save %d after, boot at %d", slot, count, save, boot)
		}
	}
}
