package inspect

import "testing"

func TestParseEntry(t *testing.T) {
	text := "title keel-test 2.0.0 (slot b)\nsort-key keel\nversion 7\nlinux /keel/b/vmlinuz\ninitrd /keel/b/initrd\noptions root=PARTUUID=x keel.slot=b\n"
	tests := []struct {
		file        string
		slot, state string
		left, done  int
	}{
		{"keel-a.conf", "a", "good", 0, 0},
		{"keel-b+3.conf", "b", "trial", 3, 0},
		{"keel-b+2-1.conf", "b", "trial", 2, 1},
		{"keel-b+0-3.conf", "b", "bad", 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			e := ParseEntry(tt.file, text)
			if e.Slot != tt.slot || e.State != tt.state || e.TriesLeft != tt.left || e.TriesDone != tt.done {
				t.Errorf("got slot %s state %s tries %d-%d", e.Slot, e.State, e.TriesLeft, e.TriesDone)
			}
			if e.Generation != 7 || e.Title != "keel-test 2.0.0 (slot b)" || e.Linux != "/keel/b/vmlinuz" ||
				e.Initrd != "/keel/b/initrd" || e.Options != "root=PARTUUID=x keel.slot=b" {
				t.Errorf("fields: %+v", e)
			}
		})
	}
}
