package format

// qcow2, version 3 (QEMU's docs/interop/qcow2.txt), laid out in this order:
//
//	cluster 0          header (no extensions, no backing file)
//	L1 table           one entry per 512 MiB of the disk
//	refcount table     one entry per refcount block
//	refcount blocks    16-bit counts (refcount_order 4), 32768 clusters each
//	L2 tables          one per 512 MiB that holds data, in disk order
//	data clusters      the non-zero clusters, in disk order
//
// Every cluster in the file is used once (refcount 1, so every L1 and L2
// entry carries the COPIED flag) and every cluster not stored reads as
// zeros, which is what an unallocated cluster of an image without a
// backing file is.

const (
	qcow2L2Entries = cluster / 8
	qcow2L2Span    = qcow2L2Entries * cluster // disk bytes one L2 table maps
	qcow2RCEntries = cluster / 2              // 16-bit refcounts per block
	qcow2Copied    = 1 << 63
	qcow2HeaderLen = 104
	// qcow2Max keeps the L1 table's size within what QEMU accepts (32 MiB).
	qcow2Max = 32 << 20 / 8 * qcow2L2Span
)

func writeQCOW2(w *writer, s *scan) error {
	l1Size := ceilDiv(s.size, qcow2L2Span)
	l1Clusters := ceilDiv(l1Size*8, cluster)
	// The L2 tables needed: the 512 MiB spans with data.
	var l2For []int64
	for _, c := range s.alloc {
		if t := c / qcow2L2Entries; len(l2For) == 0 || l2For[len(l2For)-1] != t {
			l2For = append(l2For, t)
		}
	}
	nData := int64(len(s.alloc))
	// The refcount blocks count themselves and the table that lists them:
	// grow both until they cover the whole file.
	rb, rt := int64(1), int64(1)
	var total int64
	for {
		total = 1 + l1Clusters + rt + rb + int64(len(l2For)) + nData
		nrb := ceilDiv(total, qcow2RCEntries)
		nrt := ceilDiv(nrb*8, cluster)
		if nrb == rb && nrt == rt {
			break
		}
		rb, rt = nrb, nrt
	}
	l1Off := int64(cluster)
	rtOff := l1Off + l1Clusters*cluster
	rbOff := rtOff + rt*cluster
	l2Off := rbOff + rb*cluster
	dataOff := l2Off + int64(len(l2For))*cluster

	h := make([]byte, cluster)
	copy(h, "QFI\xfb")
	be32(h[4:], 3)
	// backing file offset and size: 0
	be32(h[20:], 16) // cluster_bits
	be64(h[24:], uint64(s.size))
	// crypt_method 0
	be32(h[36:], uint32(l1Size))
	be64(h[40:], uint64(l1Off))
	be64(h[48:], uint64(rtOff))
	be32(h[56:], uint32(rt))
	// no snapshots; no incompatible, compatible or autoclear features
	be32(h[96:], 4) // refcount_order: 16-bit refcounts
	be32(h[100:], qcow2HeaderLen)
	// h[104:112] is the end-of-extensions marker: zero.
	w.write(h)

	l1 := make([]byte, l1Clusters*cluster)
	for i, t := range l2For {
		be64(l1[t*8:], uint64(l2Off+int64(i)*cluster)|qcow2Copied)
	}
	w.write(l1)

	tab := make([]byte, rt*cluster)
	for i := range rb {
		be64(tab[i*8:], uint64(rbOff+i*cluster))
	}
	w.write(tab)

	blk := make([]byte, cluster)
	for i := range rb {
		clear(blk)
		for j := range int64(qcow2RCEntries) {
			if i*qcow2RCEntries+j >= total {
				break
			}
			be16(blk[j*2:], 1)
		}
		w.write(blk)
	}

	next := dataOff
	a := s.alloc
	for _, t := range l2For {
		clear(blk)
		for len(a) > 0 && a[0]/qcow2L2Entries == t {
			be64(blk[a[0]%qcow2L2Entries*8:], uint64(next)|qcow2Copied)
			next += cluster
			a = a[1:]
		}
		w.write(blk)
	}

	w.total = nData * cluster
	for _, c := range s.alloc {
		w.data(s, blk, c*cluster, cluster)
	}
	return w.err
}
