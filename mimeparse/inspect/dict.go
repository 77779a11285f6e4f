package inspect

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"sync"

	"github.com/bodgit/sevenzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stangelandcl/ppmd"
	"github.com/ulikunitz/xz/lzma"
)

// Decoders allocate their dictionary (or PPMd model) from sizes written in
// the archive, before producing a byte: a 355-byte 7z can ask for 3 GiB.
// Every decoder that does so is given its size from the archive's headers
// first and refused above Options.ArchiveDict (DefectLimitArchiveDict).
// The bounds are in docs/policy.md ("Defects").

// errDictTooLarge: the archive asks a decoder for more memory than allowed.
var errDictTooLarge = errors.New("inspect: decoder dictionary above limits.archive_dict")

// sevenZipGate serialises the calls into the 7z reader that create
// decoders (NewReader, which decodes an encoded header, and File.Open):
// sevenzip's decoder registry is global, so the limit of the call in
// progress is held here for the decoders below to read.
var sevenZipGate struct {
	sync.Mutex
	limit int64 // Options.ArchiveDict of the caller holding the lock
	hit   bool  // a decoder was refused during that call
}

// sevenZipCall runs f (a sevenzip call that may create decoders) with the
// dictionary limit in force; hit reports that a decoder was refused.
func sevenZipCall(limit int64, f func()) (hit bool) {
	sevenZipGate.Lock()
	defer sevenZipGate.Unlock()
	sevenZipGate.limit, sevenZipGate.hit = limit, false
	f()
	return sevenZipGate.hit
}

// sevenZipAllow is called by a decoder constructor, with the gate held,
// with the memory it is about to allocate.
func sevenZipAllow(need uint64) error {
	if need > uint64(sevenZipGate.limit) {
		sevenZipGate.hit = true
		return errDictTooLarge
	}
	return nil
}

// The 7z methods whose decoders size their memory from the coder
// properties (7-Zip's Methods.txt ids), replaced by bounded equivalents of
// sevenzip's own: same libraries, a size check first. BZip2 (900 KiB),
// Deflate (32 KiB), LZ4 (4 MiB blocks) and Brotli (16 MiB windows) are
// bounded by their formats and left alone.
func init() {
	sevenzip.RegisterDecompressor([]byte{0x03, 0x01, 0x01}, sevenZipLZMA)
	sevenzip.RegisterDecompressor([]byte{0x21}, sevenZipLZMA2)
	sevenzip.RegisterDecompressor([]byte{0x03, 0x04, 0x01}, sevenZipPPMd)
	sevenzip.RegisterDecompressor([]byte{0x04, 0xf7, 0x11, 0x01}, sevenZipZstd)
}

var errSevenZipCoder = errors.New("inspect: bad 7z coder properties")

// readCloser reads r and closes c (the packed stream).
type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

// sevenZipLZMA: properties are lc/lp/pb and the dictionary size; the
// decoder (ulikunitz/xz/lzma) allocates min(dictionary, unpacked size).
func sevenZipLZMA(p []byte, size uint64, rs []io.ReadCloser) (io.ReadCloser, error) {
	if len(rs) != 1 || len(p) != 5 {
		return nil, errSevenZipCoder
	}
	if err := sevenZipAllow(min(uint64(binary.LittleEndian.Uint32(p[1:])), size)); err != nil {
		return nil, err
	}
	h := binary.LittleEndian.AppendUint64(append([]byte(nil), p...), size)
	lr, err := lzma.NewReader(io.MultiReader(bytes.NewReader(h), rs[0]))
	if err != nil {
		return nil, err
	}
	return readCloser{lr, rs[0]}, nil
}

// sevenZipLZMA2: one property byte, the dictionary size (allocated whole).
func sevenZipLZMA2(p []byte, _ uint64, rs []io.ReadCloser) (io.ReadCloser, error) {
	if len(rs) != 1 || len(p) != 1 || p[0] > 40 {
		return nil, errSevenZipCoder
	}
	dc, err := lzma.DecodeDictCap(p[0])
	if err != nil {
		return nil, errSevenZipCoder
	}
	if err := sevenZipAllow(uint64(dc)); err != nil {
		return nil, err
	}
	lr, err := lzma.Reader2Config{DictCap: int(max(dc, lzma.MinDictCap))}.NewReader2(rs[0])
	if err != nil {
		return nil, err
	}
	return readCloser{lr, rs[0]}, nil
}

// sevenZipPPMd: properties are the model order and its memory size
// (allocated whole).
func sevenZipPPMd(p []byte, size uint64, rs []io.ReadCloser) (io.ReadCloser, error) {
	if len(rs) != 1 || len(p) != 5 {
		return nil, errSevenZipCoder
	}
	mem := binary.LittleEndian.Uint32(p[1:])
	if err := sevenZipAllow(uint64(mem)); err != nil {
		return nil, err
	}
	if size > 1<<62 {
		return nil, errSevenZipCoder
	}
	pr, err := ppmd.NewH7zReader(rs[0], int(p[0]), int(mem), int(size))
	if err != nil {
		return nil, err
	}
	return readCloser{&pr, rs[0]}, nil
}

// sevenZipZstd: the window is in each frame header; the decoder refuses
// frames past the limit itself (zstd.ErrWindowSizeExceeded), counted as
// the limit by sevenZip.
func sevenZipZstd(_ []byte, _ uint64, rs []io.ReadCloser) (io.ReadCloser, error) {
	if len(rs) != 1 {
		return nil, errSevenZipCoder
	}
	zr, err := newZstd(rs[0], sevenZipGate.limit)
	if err != nil {
		return nil, err
	}
	return zstdCloser{zr, rs[0]}, nil
}

type zstdCloser struct {
	*zstd.Decoder
	c io.Closer
}

func (z zstdCloser) Close() error {
	z.Decoder.Close()
	return z.c.Close()
}

// newZstd opens a zstd decoder whose window may not exceed limit (within
// what the library accepts) and that decodes on the calling goroutine.
func newZstd(r io.Reader, limit int64) (*zstd.Decoder, error) {
	win := uint64(min(max(limit, zstd.MinWindowSize), zstd.MaxWindowSize))
	return zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(win), zstd.WithDecoderMaxMemory(win))
}

// isZstdLimit reports a zstd error that means "window or frame above the
// limit".
func isZstdLimit(err error) bool {
	return errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded)
}

// xzCheckDict reads the xz streams of src from the end, as the index
// describes them, and checks the LZMA2 dictionary of every block header
// (ulikunitz/xz takes its ReaderConfig.DictCap as a minimum and allocates
// whatever a block header asks for). errDictTooLarge above limit; any
// other error means the index does not describe the file (corrupt).
func xzCheckDict(src readerAtSize, limit int64) error {
	le := binary.LittleEndian
	end := src.Size()
	for streams := 0; ; streams++ {
		// Stream padding: zero bytes, a multiple of four, between streams.
		var pad [4]byte
		for end >= 4 {
			if _, err := src.ReadAt(pad[:], end-4); err != nil {
				return err
			}
			if pad != [4]byte{} {
				break
			}
			end -= 4
		}
		if end == 0 && streams > 0 {
			return nil
		}
		var foot [12]byte
		if end < 24 {
			return errXzIndex
		}
		if _, err := src.ReadAt(foot[:], end-12); err != nil || string(foot[10:]) != "YZ" {
			return errXzIndex
		}
		indexSize := (int64(le.Uint32(foot[4:])) + 1) * 4
		indexStart := end - 12 - indexSize
		if indexStart < 12 {
			return errXzIndex
		}
		br := bufio.NewReaderSize(io.NewSectionReader(src, indexStart, indexSize), 4096)
		if b, err := br.ReadByte(); err != nil || b != 0 {
			return errXzIndex
		}
		n, err := xzVarint(br)
		if err != nil || n > uint64(indexSize) {
			return errXzIndex
		}
		// Blocks precede the index back to back: record i starts where
		// the padded blocks before it end.
		var blocks int64
		offsets := make([]int64, 0, min(n, 1024))
		for i := uint64(0); i < n; i++ {
			unpadded, err1 := xzVarint(br)
			_, err2 := xzVarint(br)
			if err1 != nil || err2 != nil || unpadded == 0 || unpadded > uint64(indexSize+indexStart) {
				return errXzIndex
			}
			offsets = append(offsets, blocks)
			blocks += (int64(unpadded) + 3) &^ 3
			if blocks > indexStart {
				return errXzIndex
			}
		}
		start := indexStart - blocks - 12
		var head [12]byte
		if start < 0 {
			return errXzIndex
		}
		if _, err := src.ReadAt(head[:], start); err != nil || string(head[:6]) != "\xfd7zXZ\x00" {
			return errXzIndex
		}
		for _, off := range offsets {
			if err := xzBlockDict(src, start+12+off, limit); err != nil {
				return err
			}
		}
		end = start
		if end == 0 {
			return nil
		}
	}
}

var errXzIndex = errors.New("inspect: xz index does not describe the file")

// xzBlockDict checks the filters of the block header at off.
func xzBlockDict(src readerAtSize, off, limit int64) error {
	var h [1024]byte
	if _, err := src.ReadAt(h[:1], off); err != nil || h[0] == 0 {
		return errXzIndex
	}
	size := (int(h[0]) + 1) * 4
	if _, err := src.ReadAt(h[:size], off); err != nil {
		return errXzIndex
	}
	r := bytes.NewReader(h[2 : size-4])
	flags := h[1]
	if flags&0x40 != 0 {
		if _, err := xzVarint(r); err != nil {
			return errXzIndex
		}
	}
	if flags&0x80 != 0 {
		if _, err := xzVarint(r); err != nil {
			return errXzIndex
		}
	}
	for i := 0; i <= int(flags&3); i++ {
		id, err1 := xzVarint(r)
		n, err2 := xzVarint(r)
		if err1 != nil || err2 != nil || n > uint64(r.Len()) {
			return errXzIndex
		}
		props := make([]byte, n)
		r.Read(props)
		if id == 0x21 {
			if n != 1 {
				return errXzIndex
			}
			dc, err := lzma.DecodeDictCap(props[0])
			if err != nil {
				return errXzIndex
			}
			if dc > limit {
				return errDictTooLarge
			}
		}
	}
	return nil
}

// xzVarint reads an xz multibyte integer (at most 9 bytes).
func xzVarint(r io.ByteReader) (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errXzIndex
}
