package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
)

// Reader reads a bundle's artifacts after its manifest was verified.
type Reader struct {
	Manifest Manifest
	Raw      []byte // the manifest's bytes, as signed
	// KeyID is the trusted key the signature verified with (see KeyID);
	// empty for a bundle opened with OpenUnverified.
	KeyID string
	// Signer is the key id the signature claims, verified or not; empty
	// when the bundle is not signed.
	Signer string
	// Padded says the stream goes on past the bundle: a block device (or
	// an image of one) that holds the bundle at its start. Next then
	// reads nothing after the last artifact. Otherwise any byte there
	// makes the bundle corrupt (see the package comment).
	Padded bool

	r    io.Reader
	head int64     // header, manifest and signature length
	next int       // index of the next artifact
	cur  *artifact // the artifact being read, if any
	err  error     // sticky: the stream is unusable after it
}

// Open reads the header, manifest and signature from r, verifies the
// signature with the trusted key it names, and checks the manifest. It
// never seeks and reads nothing of the artifacts, so r can be a pipe or an
// HTTP body and nothing is installed from a bundle that fails here.
func Open(r io.Reader, trusted []ed25519.PublicKey) (*Reader, error) {
	br, sig, err := readHead(r)
	if err != nil {
		return nil, err
	}
	if sig == nil {
		return nil, ErrNoSignature
	}
	id := hex.EncodeToString(sig[:keyIDSize])
	var key ed25519.PublicKey
	for _, k := range trusted {
		if KeyID(k) == id {
			key = k
			break
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w: key %s is not among the %d trusted", ErrUnknownKey, id, len(trusted))
	}
	if !ed25519.Verify(key, br.Raw, sig[keyIDSize:]) {
		return nil, fmt.Errorf("%w: manifest does not verify with key %s", ErrBadSignature, id)
	}
	// Only a manifest whose signature verified is parsed.
	if err := br.parse(); err != nil {
		return nil, err
	}
	br.KeyID = id
	return br, nil
}

// OpenUnverified reads a bundle's manifest without checking its signature,
// for showing what a bundle claims (keel bundle inspect with no key). Its
// artifacts can still be read and are still hash-checked, but against a
// manifest nobody vouched for: never install from it.
func OpenUnverified(r io.Reader) (*Reader, error) {
	br, _, err := readHead(r)
	if err != nil {
		return nil, err
	}
	if err := br.parse(); err != nil {
		return nil, err
	}
	return br, nil
}

// HeaderSize is the fixed part of a bundle's head: magic, format version,
// manifest length and signature length.
const HeaderSize = headerSize

// HeadSize reads a bundle's fixed header (its first HeaderSize bytes) and
// returns the length of its head: header, manifest and signature, after
// which the artifacts start. A reader that fetches a bundle by ranges asks
// for that many bytes next; Open checks them all again.
func HeadSize(hdr []byte) (int64, error) {
	mlen, slen, err := parseHeader(hdr)
	if err != nil {
		return 0, err
	}
	return int64(headerSize) + int64(mlen) + int64(slen), nil
}

// parseHeader checks the fixed header and returns the manifest and
// signature lengths.
func parseHeader(hdr []byte) (mlen, slen uint32, err error) {
	if len(hdr) < headerSize {
		if !bytes.HasPrefix([]byte(Magic), hdr[:min(len(hdr), len(Magic))]) {
			return 0, 0, fmt.Errorf("%w: not a keel bundle (no %s magic)", ErrCorrupt, Magic)
		}
		return 0, 0, fmt.Errorf("%w: stream ends inside the header", ErrTruncated)
	}
	if string(hdr[:len(Magic)]) != Magic {
		return 0, 0, fmt.Errorf("%w: not a keel bundle (no %s magic)", ErrCorrupt, Magic)
	}
	version := binary.BigEndian.Uint32(hdr[8:])
	mlen = binary.BigEndian.Uint32(hdr[12:])
	slen = binary.BigEndian.Uint32(hdr[16:])
	if version != Format {
		return 0, 0, fmt.Errorf("%w: format version %d, this keel reads %d", ErrCorrupt, version, Format)
	}
	if mlen == 0 || mlen > MaxManifest {
		return 0, 0, fmt.Errorf("%w: manifest length %d (at most %d)", ErrCorrupt, mlen, MaxManifest)
	}
	if slen != 0 && slen != sigSize {
		return 0, 0, fmt.Errorf("%w: signature length %d, want %d", ErrCorrupt, slen, sigSize)
	}
	return mlen, slen, nil
}

// readHead reads the header, the manifest bytes and the signature block
// (nil when the bundle is unsigned).
func readHead(r io.Reader) (*Reader, []byte, error) {
	hdr := make([]byte, headerSize)
	if n, err := io.ReadFull(r, hdr); err != nil {
		if _, _, perr := parseHeader(hdr[:n]); errors.Is(perr, ErrCorrupt) {
			return nil, nil, perr
		}
		return nil, nil, short("header", err)
	}
	mlen, slen, err := parseHeader(hdr)
	if err != nil {
		return nil, nil, err
	}
	raw := make([]byte, mlen)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, nil, short("manifest", err)
	}
	var sig []byte
	if slen > 0 {
		sig = make([]byte, slen)
		if _, err := io.ReadFull(r, sig); err != nil {
			return nil, nil, short("signature", err)
		}
	}
	br := &Reader{Raw: raw, r: r, head: int64(headerSize) + int64(mlen) + int64(slen)}
	if sig != nil {
		br.Signer = hex.EncodeToString(sig[:keyIDSize])
	}
	return br, sig, nil
}

// HeadSize is the length of the bundle's header, manifest and signature:
// where its first artifact starts (see Manifest.Offset).
func (br *Reader) HeadSize() int64 { return br.head }

func (br *Reader) parse() error {
	d := json.NewDecoder(bytes.NewReader(br.Raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&br.Manifest); err != nil {
		return fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if d.More() {
		return fmt.Errorf("%w: manifest: data after the JSON object", ErrCorrupt)
	}
	return br.Manifest.Check()
}

// short turns an early end of the stream into ErrTruncated.
func short(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: stream ends inside the %s", ErrTruncated, what)
	}
	return fmt.Errorf("reading bundle %s: %w", what, err)
}

// Next returns the next artifact and a reader of exactly its bytes. The
// reader hashes as it goes: where the bytes end, it returns ErrHashMismatch
// (wrapped, naming the artifact) instead of io.EOF if they are not the
// manifest's, and ErrTruncated if the stream ends first. A caller writing
// them somewhere must treat what it wrote as garbage until it saw io.EOF.
// Calling Next before the previous artifact was read to its end reads (and
// checks) the rest of it. After the last artifact Next returns io.EOF, or
// ErrCorrupt if the stream goes on (unless Padded).
func (br *Reader) Next() (Artifact, io.Reader, error) {
	if br.err != nil {
		return Artifact{}, nil, br.err
	}
	if br.cur != nil {
		if _, err := io.Copy(io.Discard, br.cur); err != nil {
			br.err = err
			return Artifact{}, nil, err
		}
		br.cur = nil
	}
	if br.next == len(br.Manifest.Artifacts) {
		if br.Padded {
			return Artifact{}, nil, io.EOF
		}
		n, err := io.ReadFull(br.r, make([]byte, 1))
		if n > 0 {
			br.err = fmt.Errorf("%w: data after the last artifact", ErrCorrupt)
			return Artifact{}, nil, br.err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			br.err = fmt.Errorf("reading past the last artifact: %w", err)
			return Artifact{}, nil, br.err
		}
		return Artifact{}, nil, io.EOF
	}
	a := br.Manifest.Artifacts[br.next]
	br.next++
	br.cur = newArtifact(a, br.r, func(err error) { br.err = err })
	return a, br.cur, nil
}

// Verified returns a reader of exactly a's bytes from r that checks them
// as bundle.Reader.Next's readers do: where the bytes end it returns
// ErrHashMismatch (wrapped, naming the artifact) instead of io.EOF if they
// are not the manifest's, and ErrTruncated if r ends first. It is for an
// artifact whose bytes come from elsewhere than the bundle's stream (a
// delta install assembles them from chunks). a must come from a checked
// manifest.
func Verified(a Artifact, r io.Reader) io.Reader {
	return newArtifact(a, r, func(error) {})
}

func newArtifact(a Artifact, r io.Reader, fail func(error)) *artifact {
	want, _ := hex.DecodeString(a.SHA256) // checked by Manifest.Check
	return &artifact{r: r, fail: fail, a: a, left: a.Size, h: sha256.New(), want: want}
}

// artifact reads one artifact's bytes from a stream.
type artifact struct {
	r    io.Reader
	fail func(error) // told of an error that leaves the stream unusable
	a    Artifact
	left int64
	h    hash.Hash
	want []byte
	done error // io.EOF, or why the artifact is bad
}

func (a *artifact) Read(p []byte) (int, error) {
	if a.done != nil {
		return 0, a.done
	}
	if a.left == 0 {
		return 0, a.finish()
	}
	if int64(len(p)) > a.left {
		p = p[:a.left]
	}
	n, err := a.r.Read(p)
	a.h.Write(p[:n])
	a.left -= int64(n)
	switch {
	case a.left == 0:
		// Report a mismatch with the last bytes, the earliest moment it is known.
		if err := a.finish(); err != io.EOF {
			return n, err
		}
		return n, nil
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		a.done = fmt.Errorf("%w: artifact %s: stream ends %d bytes before its end", ErrTruncated, a.a.Name, a.left)
		a.fail(a.done)
		return n, a.done
	case err != nil:
		a.done = fmt.Errorf("reading artifact %s: %w", a.a.Name, err)
		a.fail(a.done)
		return n, a.done
	}
	return n, nil
}

func (a *artifact) finish() error {
	if got := a.h.Sum(nil); !bytes.Equal(got, a.want) {
		a.done = fmt.Errorf("%w: artifact %s: sha256 %x, manifest says %x", ErrHashMismatch, a.a.Name, got, a.want)
		a.fail(a.done)
		return a.done
	}
	a.done = io.EOF
	return io.EOF
}

// IsDevice reports whether a bundle source is a block or character device,
// whose reader should set Reader.Padded.
func IsDevice(fi fs.FileInfo) bool { return fi.Mode()&fs.ModeDevice != 0 }
