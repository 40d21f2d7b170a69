package install

import (
	"fmt"
	"io"
	"log/slog"

	"keel/image/disk"
	"keel/image/gpt"
)

// ReadLayout reads the GPT of a disk with 512-byte sectors into a
// disk.Layout: partitions by label, as image/disk planned them. It works on
// any io.ReaderAt: an image file or /dev/vda. A damaged primary GPT is read
// from its backup (and logged), as firmware does, so that an update can
// still find its slots.
func ReadLayout(r io.ReaderAt, size int64) (*disk.Layout, error) {
	t, err := gpt.Read(r, size)
	if err != nil {
		return nil, fmt.Errorf("read partition table: %w", err)
	}
	if t.FromBackup {
		slog.Warn("primary GPT damaged, using the backup", "err", t.PrimaryErr)
	}
	l := &disk.Layout{Size: size, GUID: t.DiskGUID}
	for _, p := range t.Partitions {
		l.Partitions = append(l.Partitions, disk.Partition{
			Number: p.Number, Label: p.Name, Type: p.Type, GUID: p.GUID,
			Start: p.Offset(), Size: p.Size(),
		})
	}
	return l, nil
}
