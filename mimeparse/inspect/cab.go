package inspect

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
)

// cab lists a Microsoft Cabinet ([MS-CAB]) from its CFFILE records: names
// and sizes. The members of folders stored or compressed with MSZIP (what
// makecab and most tools write by default) are decompressed and inspected
// like zip members (sniffed, executables found, nested archives opened);
// those of Quantum and LZX folders are listed only, with no DetectedType:
// policies judge them by Ext. Multi-cabinet sets are flagged unsupported.
func (w *walker) cab(src readerAtSize, depth int) {
	var h [40]byte
	if _, err := src.ReadAt(h[:36], 0); err != nil {
		w.corrupt()
		return
	}
	le := binary.LittleEndian
	coffFiles := int64(le.Uint32(h[16:]))
	nFolders := int(le.Uint16(h[26:]))
	nFiles := int(le.Uint16(h[28:]))
	flags := le.Uint16(h[30:])
	if flags&3 != 0 {
		// continues from or into another cabinet: only part of the set is here
		w.res.addDefect(DefectArchiveUnsupported)
	}
	folders := cabFolders(src, h[:], nFolders)
	pos := coffFiles
	var rec [16 + 256]byte
	for i := 0; i < nFiles; i++ {
		n, err := src.ReadAt(rec[:], pos)
		if n < 17 || err != nil && err != io.EOF {
			w.corrupt()
			return
		}
		nameEnd := bytes.IndexByte(rec[16:n], 0)
		if nameEnd < 0 {
			w.corrupt()
			return
		}
		name := string(rec[16 : 16+nameEnd])
		e := Entry{Name: name, Ext: extOf(name), Size: int64(le.Uint32(rec[0:])), Depth: depth + 1}
		pos += 16 + int64(nameEnd) + 1
		fi := int(le.Uint16(rec[8:]))
		if fi >= len(folders) || !folders[fi].readable() || e.Size == 0 {
			if !w.add(e) {
				return
			}
			continue
		}
		f := &folders[fi]
		r, err := f.at(int64(le.Uint32(rec[4:])), w)
		if err != nil {
			w.corrupt()
			if !w.add(e) {
				return
			}
			continue
		}
		ok, err := w.member(&e, w.limited(io.LimitReader(r, e.Size)))
		if err != nil {
			w.corrupt()
		}
		if !ok {
			return
		}
	}
}

// cabFolder is one CFFOLDER: where its data blocks start, how many there
// are and how they are compressed, and the decompressed stream being read.
type cabFolder struct {
	src       readerAtSize
	start     int64 // raw offset of the first CFDATA
	blocks    int
	method    uint16 // typeCompress & 0xf: 0 none, 1 MSZIP, 2 Quantum, 3 LZX
	dataExtra int    // cbCFData: reserved bytes in each CFDATA
	rd        *cabReader
}

func (f *cabFolder) readable() bool { return f.method == 0 || f.method == 1 }

// at returns the folder's stream positioned at offset off, reusing the
// reader when off is ahead of it (members are usually in order). The bytes
// skipped count against w's decompression budget like the members'.
func (f *cabFolder) at(off int64, w *walker) (io.Reader, error) {
	if f.rd == nil || f.rd.pos > off {
		f.rd = &cabReader{f: f, next: f.start}
	}
	if _, err := io.CopyN(io.Discard, w.limited(f.rd), off-f.rd.pos); err != nil && err != io.EOF {
		return nil, err
	}
	return f.rd, nil
}

// cabFolders reads the CFFOLDER records that follow the header (and its
// optional reserved area and previous/next cabinet names).
func cabFolders(src readerAtSize, h []byte, n int) []cabFolder {
	le := binary.LittleEndian
	flags := le.Uint16(h[30:])
	off := int64(36)
	folderExtra, dataExtra := 0, 0
	if flags&4 != 0 { // cfhdrRESERVE_PRESENT
		if _, err := src.ReadAt(h[36:40], 36); err != nil {
			return nil
		}
		off = 40 + int64(le.Uint16(h[36:]))
		folderExtra, dataExtra = int(h[38]), int(h[39])
	}
	for range bits.OnesCount16(flags&3) * 2 { // szCabinetPrev, szDiskPrev, szCabinetNext, szDiskNext
		var b [256]byte
		m, _ := src.ReadAt(b[:], off)
		i := bytes.IndexByte(b[:m], 0)
		if i < 0 {
			return nil
		}
		off += int64(i) + 1
	}
	out := make([]cabFolder, 0, min(n, 256))
	for i := 0; i < n; i++ {
		var r [8]byte
		if _, err := src.ReadAt(r[:], off); err != nil {
			return out
		}
		out = append(out, cabFolder{src: src, start: int64(le.Uint32(r[0:])), blocks: int(le.Uint16(r[4:])),
			method: le.Uint16(r[6:]) & 0xf, dataExtra: dataExtra})
		off += 8 + int64(folderExtra)
	}
	return out
}

// cabReader is the decompressed stream of one folder: its CFDATA blocks
// one after the other, MSZIP blocks inflated with the previous block's
// output as the dictionary ([MS-MCI] 2.1).
type cabReader struct {
	f     *cabFolder
	next  int64 // raw offset of the next CFDATA
	block int   // blocks read
	pos   int64 // decompressed bytes handed out
	buf   []byte
	hist  []byte // the last block's output (MSZIP dictionary)
	raw   []byte
}

// errCabData is a CFDATA block that cannot be read.
var errCabData = errors.New("cab: bad data block")

func (c *cabReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.block >= c.f.blocks {
			return 0, io.EOF
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	c.pos += int64(n)
	return n, nil
}

// fill reads and decompresses the next CFDATA block into buf.
func (c *cabReader) fill() error {
	le := binary.LittleEndian
	var h [8]byte
	if _, err := c.f.src.ReadAt(h[:], c.next); err != nil {
		return errCabData
	}
	cb, ucb := int(le.Uint16(h[4:])), int(le.Uint16(h[6:]))
	at := c.next + 8 + int64(c.f.dataExtra)
	c.next = at + int64(cb)
	c.block++
	if cap(c.raw) < cb {
		c.raw = make([]byte, cb)
	}
	raw := c.raw[:cb]
	if _, err := c.f.src.ReadAt(raw, at); err != nil {
		return errCabData
	}
	if c.f.method == 0 {
		c.buf = raw
		return nil
	}
	// MSZIP: "CK" then a deflate stream of at most 32 KiB of output
	if len(raw) < 2 || raw[0] != 'C' || raw[1] != 'K' || ucb > 32<<10 {
		return errCabData
	}
	zr := flate.NewReaderDict(bytes.NewReader(raw[2:]), c.hist)
	out := make([]byte, ucb)
	if _, err := io.ReadFull(zr, out); err != nil {
		return errCabData
	}
	c.hist, c.buf = out, out
	return nil
}
