package install_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/format"
	"keel/image/install"
)

// TestOpenFileFormats: an offline update refuses a qcow2, vmdk or vhdx
// image by name, before writing anything, rather than "no GPT".
func TestOpenFileFormats(t *testing.T) {
	raw := make([]byte, 4<<20)
	for _, f := range []format.Format{format.QCOW2, format.VMDK, format.VHDX} {
		var b bytes.Buffer
		if err := format.Write(t.Context(), &b, bytes.NewReader(raw), int64(len(raw)), f); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(t.TempDir(), "d"+f.Ext())
		if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := install.OpenFile(name, epoch)
		if !install.IsRefused(err) || !strings.Contains(err.Error(), "a "+f.String()+" image; an offline update writes raw images only") {
			t.Errorf("%s: %v", f, err)
		}
		if after, _ := os.ReadFile(name); !bytes.Equal(after, b.Bytes()) {
			t.Errorf("%s: the file changed", f)
		}
	}
}
