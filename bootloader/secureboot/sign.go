// Package secureboot signs EFI binaries for UEFI Secure Boot (Authenticode)
// and makes the keys and authenticated variables that enroll them: PK, KEK
// and db, as efitools' cert-to-efi-sig-list and sign-efi-sig-list do. Its
// output is deterministic: no signing time, and RSA PKCS#1 v1.5 signatures,
// so the same input and key give the same bytes.
package secureboot

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"

	"keel/bootloader/internal/pecoff"
)

// ErrSigned is returned by Sign for an image that already has a
// certificate table. Sign refuses rather than re-signing: a second
// signature appended by accident would go unnoticed, and stripping one
// silently could hide a mix-up of inputs. uki.Build drops a stub's
// signature, which is where one is expected.
var ErrSigned = errors.New("the image is already signed")

const (
	winCertRevision   = 0x0200
	winCertTypePKCS   = 0x0002 // WIN_CERT_TYPE_PKCS_SIGNED_DATA
	winCertTypeEFIGUI = 0x0EF1 // WIN_CERT_TYPE_EFI_GUID
)

// Sign returns pe with an Authenticode signature by key and cert appended:
// a WIN_CERTIFICATE holding PKCS#7 SignedData over SpcIndirectDataContent
// with the image's SHA-256, pointed to by the certificate table entry of
// the data directory; the PE checksum is recomputed. The image is padded
// with zeros to 8 bytes first, as the table must be aligned (the padding
// is hashed, as by sbsign and the firmware).
func Sign(pe []byte, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	if err := checkSigner(key, cert); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	f, err := pecoff.Parse(pe)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if f.CertOffset != 0 || f.CertSize != 0 {
		return nil, fmt.Errorf("signing: %w", ErrSigned)
	}
	dir := f.DataDirOffset(pecoff.DirSecurity)
	if dir < 0 {
		return nil, errors.New("signing: the image's data directory has no certificate table entry")
	}
	// Room for the certificate table, so appending it does not copy a
	// kernel-sized image again: the signer's certificate plus the
	// signature and the PKCS#7 around it, which are far smaller.
	out := make([]byte, alignUp(len(pe), 8), alignUp(len(pe), 8)+len(cert.Raw)+8192)
	copy(out, pe)
	digest, err := imageDigest(out, f)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	sig, err := authenticode(digest, key, cert)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	// dwLength counts the header and the signature; the table's size in
	// the directory includes the padding to 8 bytes (as sbsign writes it).
	wc := make([]byte, alignUp(8+len(sig), 8))
	binary.LittleEndian.PutUint32(wc, uint32(8+len(sig)))
	binary.LittleEndian.PutUint16(wc[4:], winCertRevision)
	binary.LittleEndian.PutUint16(wc[6:], winCertTypePKCS)
	copy(wc[8:], sig)
	binary.LittleEndian.PutUint32(out[dir:], uint32(len(out)))
	binary.LittleEndian.PutUint32(out[dir+4:], uint32(len(wc)))
	out = append(out, wc...)
	f.SetChecksum(out)
	return out, nil
}

// imageDigest is the Authenticode hash of an unsigned image b, as the
// Authenticode specification and EDK2's DxeImageVerificationLib compute
// it: the headers without the CheckSum and the certificate table entry,
// the sections in file order, then whatever follows them. Sections must
// follow each other without gaps: where they do not, the firmware and
// tools like sbverify hash different bytes, so such an image is refused.
func imageDigest(b []byte, f *pecoff.File) ([]byte, error) {
	h := sha256.New()
	cs, dir, hdr := f.ChecksumOffset(), f.DataDirOffset(pecoff.DirSecurity), int(f.SizeOfHeaders)
	h.Write(b[:cs])
	h.Write(b[cs+4 : dir])
	h.Write(b[dir+8 : hdr])
	secs := slices.Clone(f.Sections)
	secs = slices.DeleteFunc(secs, func(s pecoff.Section) bool { return s.SizeOfRawData == 0 })
	slices.SortStableFunc(secs, func(a, b pecoff.Section) int { return int(a.PointerToRawData) - int(b.PointerToRawData) })
	sum := hdr
	for _, s := range secs {
		if int(s.PointerToRawData) != sum {
			return nil, fmt.Errorf("section %s at file offset %#x, not right after the one before (%#x): unsupported layout", s.Name, s.PointerToRawData, sum)
		}
		h.Write(b[s.PointerToRawData : s.PointerToRawData+s.SizeOfRawData])
		sum += int(s.SizeOfRawData)
	}
	if len(b) > sum {
		h.Write(b[sum:])
	}
	return h.Sum(nil), nil
}

// obsolete is the SpcLink file name every Authenticode signer writes, in
// UCS-2 big-endian: "<<<Obsolete>>>".
var obsolete = func() []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune("<<<Obsolete>>>")) {
		b = append(b, byte(c>>8), byte(c))
	}
	return b
}()

// authenticode returns the PKCS#7 SignedData ContentInfo of an
// Authenticode signature over the image digest.
func authenticode(digest []byte, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	// SpcIndirectDataContent ::= SEQUENCE {
	//   data SpcAttributeTypeAndOptionalValue { type SPC_PE_IMAGE_DATA,
	//     value SpcPeImageData { flags BIT STRING {}, file [0] SpcLink { [2] file SpcString { [0] unicode } } } },
	//   messageDigest DigestInfo { sha256, digest } }
	peImageData := seq(
		[]byte{0x03, 0x01, 0x00}, // an empty BIT STRING
		tlv(tagContext0, tlv(0xa2, tlv(0x80, obsolete))),
	)
	inner := append(
		seq(mustMarshal(oidSpcPEImageData), peImageData),
		seq(algSHA256, tlv(tagOctetString, digest))...,
	)
	indirect := seq(inner)
	// Authenticode's quirk: messageDigest is over the content octets of
	// SpcIndirectDataContent, without its SEQUENCE tag and length.
	md := sha256.Sum256(inner)
	attrs := [][]byte{
		attribute(oidContentType, mustMarshal(oidSpcIndirectData)),
		attribute(oidSpcSpOpusInfo, seq()),
		attribute(oidMessageDigest, tlv(tagOctetString, md[:])),
	}
	contentInfo := seq(mustMarshal(oidSpcIndirectData), tlv(tagContext0, indirect))
	sd, err := signedData(key, cert, contentInfo, attrs, nil)
	if err != nil {
		return nil, err
	}
	return contentInfoSignedData(sd), nil
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }
