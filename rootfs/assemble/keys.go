package assemble

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"keel/image/bundle"
	"keel/profiles"
	"keel/rootfs"
)

// KeysDir holds the public keys an image trusts to sign its updates; the
// installer on the device reads every *.pub in it.
const KeysDir = "/etc/keel/keys"

// addKeys bakes the profile's update.keys into the tree, each as
// KeysDir/<base>.pub. Each is parsed and written in keel's own format, so a
// file that is not an ed25519 public key fails the build, not the first
// update, and the device needs to read only one format.
func addKeys(t *rootfs.Tree, p *profiles.Profile, epoch int64) error {
	seen := map[string]string{}
	for i, k := range p.Update.Keys {
		field := fmt.Sprintf("update.keys[%d]", i)
		pub, err := bundle.ReadPublicKey(k)
		if err != nil {
			return p.Errorf(field, "%v", err)
		}
		name := strings.TrimSuffix(filepath.Base(k), ".pub") + ".pub"
		if other, ok := seen[name]; ok && other == k {
			return p.Errorf(field, "%s is listed twice", k)
		} else if ok {
			return p.Errorf(field, "%s and %s would both be %s in the image: rename one", other, k, path.Join(KeysDir, name))
		}
		seen[name] = k
		if err := t.MkdirAll(KeysDir, 0o755); err != nil {
			return err
		}
		e := rootfs.NewFile(0o644, bundle.MarshalPublicKey(pub))
		e.Mtime = epoch
		if err := t.Add(path.Join(KeysDir, name), e); err != nil {
			return p.Errorf(field, "%v", err)
		}
	}
	return nil
}
