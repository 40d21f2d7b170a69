package assemble

import (
	"context"
	"testing"

	"keel/profiles"
)

// TestKeelctl: the keelctl binary lands at /usr/bin/keelctl, executable and
// root's, when given; an image built without one has none.
func TestKeelctl(t *testing.T) {
	p, err := profiles.Load("testdata/profile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, ctl := range [][]byte{[]byte("\x7fELF keelctl"), nil} {
		tree, err := Tree(context.Background(), p, Options{KeelInit: []byte("\x7fELF fake"), Keelctl: ctl, Epoch: 1000})
		if err != nil {
			t.Fatal(err)
		}
		e, ok := tree.Get(KeelctlPath)
		if ctl == nil {
			if ok {
				t.Errorf("%s present without a binary", KeelctlPath)
			}
			continue
		}
		if !ok || e.Mode&0o777 != 0o755 || e.UID != 0 || e.Mtime != 1000 {
			t.Fatalf("%s: %+v", KeelctlPath, e)
		}
		if got := read(t, tree, KeelctlPath); got != string(ctl) {
			t.Errorf("content %q", got)
		}
	}
}
