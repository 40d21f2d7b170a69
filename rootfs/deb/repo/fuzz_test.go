package repo

import (
	"testing"
	"time"
)

// FuzzRelease: hostile InRelease and Release bytes are refused, never a
// panic. Seeds are a plain Release and a clearsigned shape.
func FuzzRelease(f *testing.F) {
	rel := "Suite: stable\nCodename: bookworm\nDate: Sat, 10 Feb 2024 10:00:00 UTC\nValid-Until: Sat, 17 Feb 2024 10:00:00 UTC\n" +
		"SHA256:\n " + sha256Hex(nil) + " 0 main/binary-amd64/Packages\n"
	f.Add([]byte(rel))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + rel +
		"-----BEGIN PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE-----\n"))
	kr := &keyring{desc: "no keys"}
	f.Fuzz(func(t *testing.T, b []byte) {
		parseRelease(b)
		if _, err := verifyInRelease(b, kr, "fuzz", time.Unix(1700000000, 0)); err == nil {
			t.Fatal("verified without a key")
		}
	})
}
