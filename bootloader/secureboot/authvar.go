package secureboot

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"keel/image/disk"
)

// GUID is an EFI_GUID in its in-memory (and on-disk) byte order: the first
// three fields little-endian.
type GUID [16]byte

// ParseGUID reads the text form, e.g. "8be4df61-93ca-11d2-aa0d-00e098032b8c".
func ParseGUID(s string) (GUID, error) {
	var g GUID
	parts := strings.Split(s, "-")
	if len(s) != 36 || len(parts) != 5 {
		return g, fmt.Errorf("GUID %q: want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	b, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil || len(b) != 16 {
		return g, fmt.Errorf("GUID %q: want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(b[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(b[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(b[6:]))
	copy(g[8:], b[8:])
	return g, nil
}

func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

func (g GUID) String() string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(g[0:]), le.Uint16(g[4:]), le.Uint16(g[6:]), g[8:10], g[10:16])
}

// GUIDs from the UEFI specification.
var (
	GlobalVariable         = mustGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c") // EFI_GLOBAL_VARIABLE: PK, KEK
	ImageSecurityDatabase  = mustGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f") // db, dbx
	certX509GUID           = mustGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072") // EFI_CERT_X509_GUID
	certTypePKCS7GUID      = mustGUID("4aafd29d-68df-49ee-8aa9-347d375665a7") // EFI_CERT_TYPE_PKCS7_GUID
	authenticatedVariables = map[string]GUID{"PK": GlobalVariable, "KEK": GlobalVariable, "db": ImageSecurityDatabase, "dbx": ImageSecurityDatabase}
)

// OwnerGUID is the signature owner GUID keel writes into the signature
// lists of the keys called name: derived from the name (as image/disk
// derives a disk's GUIDs), so the same name gives the same GUID.
func OwnerGUID(name string) GUID {
	return mustGUID(disk.GUID([]byte(name), "secure boot signature owner"))
}

// SignatureList is an EFI_SIGNATURE_LIST of type X.509 holding cert, owned
// by owner: what cert-to-efi-sig-list writes.
func SignatureList(owner GUID, cert *x509.Certificate) []byte {
	le := binary.LittleEndian
	sigSize := 16 + len(cert.Raw)
	b := make([]byte, 28+sigSize)
	copy(b, certX509GUID[:])
	le.PutUint32(b[16:], uint32(len(b))) // SignatureListSize
	le.PutUint32(b[20:], 0)              // SignatureHeaderSize
	le.PutUint32(b[24:], uint32(sigSize))
	copy(b[28:], owner[:])
	copy(b[44:], cert.Raw)
	return b
}

// Variable attributes of PK, KEK, db and dbx: non-volatile, boot service
// and runtime access, time-based authenticated write access.
const authVarAttributes = 0x01 | 0x02 | 0x04 | 0x20

// efiTime encodes t as EFI_TIME in UTC, with the fields the specification
// requires to be zero for time-based authenticated variables (Pad1,
// Nanosecond, TimeZone, Daylight, Pad2) zero.
func efiTime(t time.Time) ([]byte, error) {
	t = t.UTC()
	if t.Year() < 1900 || t.Year() > 9999 {
		return nil, fmt.Errorf("time %s: EFI_TIME holds years 1900 to 9999", t)
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b, uint16(t.Year()))
	b[2], b[3], b[4], b[5], b[6] = byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second())
	return b, nil
}

// AuthenticatedVariable returns an update of the Secure Boot variable name
// (PK, KEK, db or dbx) to data (signature lists): an
// EFI_VARIABLE_AUTHENTICATION_2 with timestamp t, signed by key and cert,
// followed by data, what SetVariable takes and sign-efi-sig-list writes.
// The signature is over the variable's name (UCS-2, no terminator), vendor
// GUID, attributes, timestamp and data, without signed attributes.
func AuthenticatedVariable(name string, data []byte, t time.Time, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	vendor, ok := authenticatedVariables[name]
	if !ok {
		return nil, fmt.Errorf("variable %q: want PK, KEK, db or dbx", name)
	}
	ts, err := efiTime(t)
	if err != nil {
		return nil, err
	}
	var payload []byte
	for _, c := range utf16.Encode([]rune(name)) {
		payload = binary.LittleEndian.AppendUint16(payload, c)
	}
	payload = append(payload, vendor[:]...)
	payload = binary.LittleEndian.AppendUint32(payload, authVarAttributes)
	payload = append(payload, ts...)
	payload = append(payload, data...)
	digest := sha256.Sum256(payload)
	// A detached signature: the content type is data, the content absent.
	// CertData is the bare SignedData, as the UEFI specification says and
	// efitools writes it (some HP firmware refuses a ContentInfo around
	// it; EDK2 takes either).
	sig, err := signedData(key, cert, seq(mustMarshal(oidData)), nil, digest[:])
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", name, err)
	}
	// EFI_VARIABLE_AUTHENTICATION_2: TimeStamp, then AuthInfo, a
	// WIN_CERTIFICATE_UEFI_GUID (header, CertType, CertData).
	out := append([]byte(nil), ts...)
	out = binary.LittleEndian.AppendUint32(out, uint32(8+16+len(sig)))
	out = binary.LittleEndian.AppendUint16(out, winCertRevision)
	out = binary.LittleEndian.AppendUint16(out, winCertTypeEFIGUI)
	out = append(out, certTypePKCS7GUID[:]...)
	out = append(out, sig...)
	return append(out, data...), nil
}
