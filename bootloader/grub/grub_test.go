package grub

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"keel/bootloader"
	"keel/bootloader/internal/counted"
)

// TestEnvAgainstGrubEditenv: what GRUB's own grub-editenv writes, ParseEnv
// reads, and what FormatEnv writes, grub-editenv lists the same.
func TestEnvAgainstGrubEditenv(t *testing.T) {
	editenv, err := exec.LookPath("grub-editenv")
	if err != nil {
		t.Skip("grub-editenv not installed (apt-get install grub-common)")
	}
	vars := map[string]string{"a_OK": "1", "a_TRY": "0", "b_TRY": "3", "odd": `back\slash`, "multi": "two\nlines", "empty": ""}
	dir := t.TempDir()
	theirs := filepath.Join(dir, "theirs")
	args := []string{theirs, "set"}
	for k, v := range vars {
		args = append(args, k+"="+v)
	}
	run := func(a ...string) string {
		out, err := exec.Command(editenv, a...).CombinedOutput()
		if err != nil {
			t.Fatalf("grub-editenv %v: %v\n%s", a, err, out)
		}
		return string(out)
	}
	run(theirs, "create")
	run(args...)
	b, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEnv(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, vars) {
		t.Errorf("ParseEnv of grub-editenv's file = %q, want %q", got, vars)
	}
	ours, err := FormatEnv(vars)
	if err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(dir, "ours")
	if err := os.WriteFile(mine, ours, 0o644); err != nil {
		t.Fatal(err)
	}
	sorted := func(s string) string {
		l := strings.Split(s, "\n")
		slices.Sort(l)
		return strings.Join(l, "\n")
	}
	if a, b := sorted(run(mine, "list")), sorted(run(theirs, "list")); a != b {
		t.Errorf("grub-editenv list of ours:\n%s\ntheirs:\n%s", a, b)
	}
	// grub-editenv changes ours in place, as GRUB's save_env does.
	run(mine, "set", "b_TRY=2")
	b, _ = os.ReadFile(mine)
	if got, err := ParseEnv(b); err != nil || got["b_TRY"] != "2" || got["a_OK"] != "1" {
		t.Errorf("after grub-editenv set: %q, %v", got, err)
	}
}

func TestParseEnvErrors(t *testing.T) {
	good, _ := FormatEnv(map[string]string{"x": "1"})
	for name, b := range map[string][]byte{
		"short":        good[:1000],
		"no header":    append([]byte("# GRUB Environment Blocx\n"), good[25:]...),
		"no equals":    append([]byte(envHeader+"junk\n"), good[len(envHeader)+5:]...),
		"unterminated": append([]byte(envHeader), []byte(strings.Repeat("y", EnvSize-len(envHeader)))...),
	} {
		if _, err := ParseEnv(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	big := map[string]string{"x": strings.Repeat("v", EnvSize)}
	if _, err := FormatEnv(big); err == nil {
		t.Error("FormatEnv of too much: no error")
	}
}

func TestEntryValues(t *testing.T) {
	e := bootloader.Entry{Slot: "a", Title: "it's", Generation: 1, Kernel: "/k"}
	if _, err := Entries.FormatEntry(e); err == nil {
		t.Error("a quote in the title: no error")
	}
	e.Title, e.EFI = "t", "/keel/a/keel.efi"
	if _, err := Entries.FormatEntry(e); err == nil {
		t.Error("an EFI image: no error")
	}
	e.EFI = ""
	body, err := Entries.FormatEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Entries.ParseEntry("a", body)
	if err != nil || got != e {
		t.Errorf("round trip: %+v, %v; want %+v", got, err, e)
	}
	for name, body := range map[string]string{
		"no generation":  "set keel_a_linux='/k'\n",
		"bad generation": "set keel_a_gen='x'\nset keel_a_linux='/k'\n",
		"other slot":     "set keel_b_gen='1'\nset keel_b_linux='/k'\n",
		"unquoted":       "set keel_a_gen=1\n",
	} {
		if _, err := Entries.ParseEntry("a", []byte(body)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for _, cmdline := range []string{"keel.trial=c+1-1", "keel.trial=a+x-1", "keel.trial=a1-1"} {
		if _, err := Entries.Booted(bootloader.BootEnv{Cmdline: cmdline}); err == nil {
			t.Errorf("Booted(%q): no error", cmdline)
		}
	}
}

// TestConfigCountsEveryTry: grub.cfg counts down from every number of
// tries WriteEntry accepts, since GRUB's script has no arithmetic.
func TestConfigCountsEveryTry(t *testing.T) {
	cfg := Config()
	for _, s := range counted.Slots {
		for n := 1; n <= MaxTries; n++ {
			want := "[ \"$" + s + "_TRY\" = " + string(rune('0'+n)) + " ]; then set " + s + "_TRY=" + string(rune('0'+n-1))
			if !strings.Contains(cfg, want) {
				t.Errorf("grub.cfg does not count %s down from %d", s, n)
			}
		}
		if !strings.Contains(cfg, "save_env --file "+EnvPath+" "+s+"_TRY "+s+"_DONE") {
			t.Errorf("grub.cfg does not save %s's counter", s)
		}
	}
	if err := Entries.WriteEntry(nil, bootloader.Entry{Slot: "a", Tries: MaxTries + 1}); err == nil {
		t.Error("WriteEntry of more tries than grub.cfg counts: no error")
	}
}
