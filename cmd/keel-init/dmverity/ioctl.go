package dmverity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// The device-mapper ioctl interface, include/uapi/linux/dm-ioctl.h. Every
// command passes one buffer: a struct dm_ioctl, then (from data_start) the
// command's data; the kernel writes its answer into the same buffer.

// ioctlHeader is struct dm_ioctl. Its fields are laid out as in C with no
// implicit padding (the header pads explicitly), so encoding/binary writes
// exactly the C layout: 312 bytes.
type ioctlHeader struct {
	Version     [3]uint32 // in: the interface version we speak; out: the kernel's
	DataSize    uint32    // the whole buffer, this header included
	DataStart   uint32    // offset of the data from the start of the header
	TargetCount uint32
	OpenCount   int32
	Flags       uint32
	EventNr     uint32
	Padding     uint32
	Dev         uint64 // the device's dev_t, in the kernel's huge_encode_dev form
	Name        [nameLen]byte
	UUID        [uuidLen]byte
	Data        [7]byte
}

// targetSpec is struct dm_target_spec; its parameter string follows it,
// NUL-terminated and padded so that the next spec is 8-byte aligned.
type targetSpec struct {
	SectorStart uint64
	Length      uint64
	Status      int32
	// Next: on DM_TABLE_LOAD, the bytes from this spec to the next; on
	// DM_TABLE_STATUS, from the first spec to the next.
	Next       uint32
	TargetType [typeNameLen]byte
}

const (
	nameLen     = 128 // DM_NAME_LEN, with the NUL
	uuidLen     = 129 // DM_UUID_LEN, with the NUL
	typeNameLen = 16  // DM_MAX_TYPE_NAME, with the NUL

	headerSize = 312 // sizeof(struct dm_ioctl); also the size in the ioctl numbers
	specSize   = 40  // sizeof(struct dm_target_spec)

	// The interface version we speak. The kernel refuses another major,
	// or a minor above its own, and answers with its version; nothing we
	// use is newer than 4.0.
	versionMajor = 4
	versionMinor = 0
)

// order is the byte order of the ioctl structures: the machine's own.
var order = binary.NativeEndian

// align8 rounds n up to a multiple of 8, the alignment of dm_target_spec
// (and of the kernel's answers after the header).
func align8(n int) int { return (n + 7) &^ 7 }

// setName copies s into a fixed, NUL-terminated field such as name[128].
func setName(dst []byte, s, what string) error {
	if len(s) >= len(dst) {
		return fmt.Errorf("%s %q is longer than %d bytes", what, s, len(dst)-1)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s %q contains a NUL byte", what, s)
	}
	copy(dst, s)
	return nil
}

// cString is the text of a NUL-terminated field.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// checkName is what the kernel accepts as a device name (dm-ioctl.c
// check_name), said before asking it.
func checkName(name string) error {
	if name == "" {
		return errors.New("empty device-mapper device name")
	}
	if strings.Contains(name, "/") {
		return fmt.Errorf("device-mapper device name %q contains '/'", name)
	}
	return nil
}

// request is the buffer for one command on device name: the header,
// then data holding targets target specs, in a buffer of at least size
// bytes (the kernel writes its answer, e.g. a status line, into the rest).
func request(name string, flags, targets uint32, data []byte, size int) ([]byte, error) {
	h := ioctlHeader{
		Version:     [3]uint32{versionMajor, versionMinor, 0},
		DataStart:   headerSize,
		TargetCount: targets,
		Flags:       flags,
	}
	if name != "" {
		if err := setName(h.Name[:], name, "device name"); err != nil {
			return nil, err
		}
	}
	size = max(size, headerSize+len(data))
	h.DataSize = uint32(size)
	buf := make([]byte, size)
	if _, err := binary.Encode(buf, order, &h); err != nil {
		return nil, err
	}
	copy(buf[headerSize:], data)
	return buf, nil
}

// decodeHeader reads the header the kernel wrote back.
func decodeHeader(buf []byte) (ioctlHeader, error) {
	var h ioctlHeader
	if _, err := binary.Decode(buf, order, &h); err != nil {
		return h, fmt.Errorf("decoding struct dm_ioctl: %w", err)
	}
	return h, nil
}

// encodeTarget is one dm_target_spec with its parameters, as DM_TABLE_LOAD
// reads it: params NUL-terminated and padded to 8 bytes, Next the size of
// the whole (where a following spec would start).
func encodeTarget(start, sectors uint64, ttype, params string) ([]byte, error) {
	s := targetSpec{SectorStart: start, Length: sectors}
	if ttype == "" {
		return nil, errors.New("empty target type")
	}
	if err := setName(s.TargetType[:], ttype, "target type"); err != nil {
		return nil, err
	}
	if strings.IndexByte(params, 0) >= 0 {
		return nil, errors.New("target parameters contain a NUL byte")
	}
	n := align8(specSize + len(params) + 1)
	s.Next = uint32(n)
	buf := make([]byte, n)
	if _, err := binary.Encode(buf, order, &s); err != nil {
		return nil, err
	}
	copy(buf[specSize:], params)
	return buf, nil
}

// decodeStatus reads the first target of a DM_TABLE_STATUS answer: its
// type and status line. The answer's data starts at the header's
// DataStart and ends at its DataSize.
func decodeStatus(buf []byte) (ttype, status string, err error) {
	h, err := decodeHeader(buf)
	if err != nil {
		return "", "", err
	}
	if h.TargetCount == 0 {
		return "", "", errors.New("the device has no active table")
	}
	start, end := int(h.DataStart), int(h.DataSize)
	if start < headerSize || end > len(buf) || start+specSize > end {
		return "", "", fmt.Errorf("malformed status answer: data from %d to %d in a %d-byte buffer", start, end, len(buf))
	}
	var s targetSpec
	if _, err := binary.Decode(buf[start:], order, &s); err != nil {
		return "", "", fmt.Errorf("decoding struct dm_target_spec: %w", err)
	}
	return cString(s.TargetType[:]), cString(buf[start+specSize : end]), nil
}
