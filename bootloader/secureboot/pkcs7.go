package secureboot

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// The PKCS#7 (RFC 2315) SignedData both Authenticode and authenticated
// EFI variables carry, encoded as OpenSSL's PKCS7_sign encodes it (so that
// an authenticated variable is byte for byte what sign-efi-sig-list
// writes), without the signing time OpenSSL adds to signed attributes:
// one signer, SHA-256, RSA PKCS#1 v1.5 (deterministic), the signer's
// certificate included.

var (
	oidData            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSpcIndirectData = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	oidSpcSpOpusInfo   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 12}
	derNull            = []byte{0x05, 0x00}
	algSHA256          = seq(mustMarshal(oidSHA256), derNull)
	algRSAEncryption   = seq(mustMarshal(oidRSAEncryption), derNull)
	errNotRSA          = errors.New("not an RSA key: UEFI Secure Boot verifies RSA signatures only")
)

const (
	minRSABits = 2048

	tagOctetString = 0x04
	tagSequence    = 0x30
	tagSet         = 0x31
	tagContext0    = 0xa0 // [0] constructed
)

// tlv encodes one DER element.
func tlv(tag byte, contents ...[]byte) []byte {
	n := 0
	for _, c := range contents {
		n += len(c)
	}
	out := []byte{tag}
	if n < 0x80 {
		out = append(out, byte(n))
	} else {
		var l []byte
		for x := n; x > 0; x >>= 8 {
			l = append([]byte{byte(x)}, l...)
		}
		out = append(append(out, 0x80|byte(len(l))), l...)
	}
	for _, c := range contents {
		out = append(out, c...)
	}
	return out
}

func seq(contents ...[]byte) []byte { return tlv(tagSequence, contents...) }

// setOf encodes a DER SET OF: its elements sorted by their encodings.
func setOf(elems ...[]byte) []byte {
	s := slices.Clone(elems)
	slices.SortFunc(s, bytes.Compare)
	return tlv(tagSet, s...)
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func attribute(oid asn1.ObjectIdentifier, value []byte) []byte {
	return seq(mustMarshal(oid), setOf(value))
}

// checkSigner makes sure key is an RSA key of at least 2048 bits whose
// public half is the certificate's.
func checkSigner(key crypto.Signer, cert *x509.Certificate) error {
	if key == nil || cert == nil {
		return errors.New("no key or certificate")
	}
	pub, ok := key.Public().(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w (a %T)", errNotRSA, key.Public())
	}
	if pub.N.BitLen() < minRSABits {
		return fmt.Errorf("RSA key of %d bits: Secure Boot wants at least %d", pub.N.BitLen(), minRSABits)
	}
	if !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("the key does not belong to the certificate %q", cert.Subject)
	}
	return nil
}

// signedData returns a DER SignedData (not wrapped in a ContentInfo: the
// caller decides, see contentInfoSignedData). contentInfo is
// the inner ContentInfo (with or without content). With attrs, the
// signature is over the DER SET OF the attributes (which must carry the
// content's digest); without, over digest itself.
func signedData(key crypto.Signer, cert *x509.Certificate, contentInfo []byte, attrs [][]byte, digest []byte) ([]byte, error) {
	if err := checkSigner(key, cert); err != nil {
		return nil, err
	}
	var signedAttrs []byte
	if attrs != nil {
		set := setOf(attrs...)
		h := sha256.Sum256(set)
		digest = h[:]
		// In SignerInfo the SET is tagged [0] IMPLICIT.
		signedAttrs = append([]byte{tagContext0}, set[1:]...)
	}
	// RSA PKCS#1 v1.5 uses no randomness: the same input gives the same
	// signature, and so the same signed file.
	sig, err := key.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	serial, err := asn1.Marshal(new(big.Int).Set(cert.SerialNumber))
	if err != nil {
		return nil, err
	}
	signerInfo := seq(
		mustMarshal(1),
		seq(cert.RawIssuer, serial),
		algSHA256,
		signedAttrs,
		algRSAEncryption,
		tlv(tagOctetString, sig),
	)
	return seq(
		mustMarshal(1),
		setOf(algSHA256),
		contentInfo,
		tlv(tagContext0, cert.Raw),
		setOf(signerInfo),
	), nil
}

// contentInfoSignedData wraps a SignedData in the ContentInfo that says
// what it is, as Authenticode wants it.
func contentInfoSignedData(sd []byte) []byte {
	return seq(mustMarshal(oidSignedData), tlv(tagContext0, sd))
}
