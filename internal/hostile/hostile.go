// Package hostile builds archives whose headers lie, for tests: a few
// hundred bytes that ask a decoder for gigabytes of dictionary, and
// compression bombs. Each builder follows the format's own description
// (7-Zip's 7zFormat.txt, the .xz file format, RFC 8878 for zstd, the RAR
// 5.0 archive format) and writes only what the readers check.
package hostile

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"unicode/utf16"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// 7z coder ids (7-Zip's Methods.txt).
var (
	LZMA  = []byte{0x03, 0x01, 0x01}
	LZMA2 = []byte{0x21}
	PPMd  = []byte{0x03, 0x04, 0x01}
	Zstd  = []byte{0x04, 0xf7, 0x11, 0x01}
)

// Coder is one 7z coder: method id and properties.
type Coder struct{ ID, Props []byte }

// num writes a 7z NUMBER in its 9-byte form (0xFF, then 8 bytes LE).
func num(b []byte, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(append(b, 0xff), v)
}

// streamsInfo writes PackInfo and UnpackInfo for one folder of one coder.
func streamsInfo(b []byte, packPos, packSize uint64, c Coder, unpack uint64) []byte {
	b = append(b, 0x06) // kPackInfo
	b = num(b, packPos)
	b = num(b, 1)
	b = append(b, 0x09) // kSize
	b = num(b, packSize)
	b = append(b, 0x00)
	b = append(b, 0x07, 0x0b) // kUnpackInfo, kFolder
	b = num(b, 1)
	b = append(b, 0)        // not external
	b = num(b, 1)           // one coder
	flag := byte(len(c.ID)) // simple coder
	if c.Props != nil {
		flag |= 0x20
	}
	b = append(b, flag)
	b = append(b, c.ID...)
	if c.Props != nil {
		b = num(b, uint64(len(c.Props)))
		b = append(b, c.Props...)
	}
	b = append(b, 0x0c) // kCodersUnpackSize
	b = num(b, unpack)
	return append(b, 0x00)
}

// header writes a plain 7z header for one file in one folder.
func header(name string, packSize uint64, c Coder, unpack uint64) []byte {
	b := []byte{0x01, 0x04} // kHeader, kMainStreamsInfo
	b = streamsInfo(b, 0, packSize, c, unpack)
	b = append(b, 0x00) // end of MainStreamsInfo
	b = append(b, 0x05) // kFilesInfo
	b = num(b, 1)       // one file
	var n []byte
	for _, u := range utf16.Encode([]rune(name)) {
		n = binary.LittleEndian.AppendUint16(n, u)
	}
	n = append(n, 0, 0)
	b = append(b, 0x11) // kName
	b = num(b, uint64(1+len(n)))
	b = append(b, 0)
	b = append(b, n...)
	return append(b, 0x00, 0x00) // end of FilesInfo, end of Header
}

// signature writes the 32-byte signature header before next (the header
// record at offset off after it).
func signature(off uint64, next []byte) []byte {
	s := []byte{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c, 0, 4, 0, 0, 0, 0}
	var start []byte
	start = binary.LittleEndian.AppendUint64(start, off)
	start = binary.LittleEndian.AppendUint64(start, uint64(len(next)))
	start = binary.LittleEndian.AppendUint32(start, crc32.ChecksumIEEE(next))
	binary.LittleEndian.PutUint32(s[8:], crc32.ChecksumIEEE(start))
	return append(s, start...)
}

// SevenZip returns a 7z archive holding one file, name, whose content is
// packed (already coded with c) and unpack bytes long once decoded.
func SevenZip(name string, c Coder, packed []byte, unpack uint64) []byte {
	h := header(name, uint64(len(packed)), c, unpack)
	out := signature(uint64(len(packed)), h)
	return append(append(out, packed...), h...)
}

// SevenZipEncodedHeader returns a 7z archive whose header is itself
// packed (packedHeader, coded with c, claiming unpack bytes): the reader
// decodes it before it can list anything.
func SevenZipEncodedHeader(c Coder, packedHeader []byte, unpack uint64) []byte {
	h := streamsInfo([]byte{0x17}, 0, uint64(len(packedHeader)), c, unpack) // kEncodedHeader
	h = append(h, 0x00)
	out := signature(uint64(len(packedHeader)), h)
	return append(append(out, packedHeader...), h...)
}

// LZMA2Props is the 7z/xz LZMA2 property byte for a dictionary of n bytes
// (rounded up to the next size the byte can say).
func LZMA2Props(n int64) byte { return lzma.EncodeDictCap(n) }

// LZMA2Raw returns data as raw LZMA2 chunks with a small dictionary.
func LZMA2Raw(data []byte) []byte {
	var b bytes.Buffer
	w, err := lzma.Writer2Config{DictCap: 1 << 16}.NewWriter2(&b)
	if err != nil {
		panic(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// LZMARaw returns the 7z LZMA coder properties and data for data.
func LZMARaw(data []byte) (props, packed []byte) {
	var b bytes.Buffer
	w, err := lzma.WriterConfig{DictCap: 1 << 16, SizeInHeader: true, Size: int64(len(data))}.NewWriter(&b)
	if err != nil {
		panic(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()[:5], b.Bytes()[13:]
}

// DictProps returns 7z LZMA (lc=3 lp=0 pb=2) or PPMd (order 6)
// properties: the first byte, then a 32-bit dictionary or model size.
func DictProps(first byte, size uint32) []byte {
	return binary.LittleEndian.AppendUint32([]byte{first}, size)
}

// Xz returns an xz stream of data whose LZMA2 dictionary property says
// dictCap bytes (the data itself is coded with a small one).
func Xz(data []byte, dictCap int64) []byte {
	var b bytes.Buffer
	w, err := xz.WriterConfig{DictCap: 1 << 16}.NewWriter(&b)
	if err != nil {
		panic(err)
	}
	w.Write(data)
	w.Close()
	out := b.Bytes()
	// The first block header follows the 12-byte stream header: size,
	// flags, then the LZMA2 filter (id 0x21, one property byte).
	hs := (int(out[12]) + 1) * 4
	h := out[12 : 12+hs]
	i := bytes.Index(h, []byte{0x21, 0x01})
	if i < 0 {
		panic("hostile: no LZMA2 filter")
	}
	h[i+2] = lzma.EncodeDictCap(dictCap)
	binary.LittleEndian.PutUint32(h[hs-4:], crc32.ChecksumIEEE(h[:hs-4]))
	return out
}

// ZstdWindow returns a zstd frame of data whose header declares a window
// of 1<<windowLog bytes (10 <= windowLog <= 41).
func ZstdWindow(data []byte, windowLog uint) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithSingleSegment(false), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err)
	}
	out := enc.EncodeAll(data, nil)
	enc.Close()
	if out[4]&0x20 != 0 {
		panic("hostile: single-segment frame")
	}
	out[5] = byte(windowLog-10) << 3 // Window_Descriptor: exponent, no mantissa
	return out
}

// RAR5 returns a RAR 5 archive with one entry coded with method (1-5) and
// a dictionary of 128 KiB << dictLog, claiming unpacked bytes; its data
// area is data (not valid compressed data: the window is what matters).
func RAR5(name string, data []byte, method, dictLog, unpacked uint64) []byte {
	vint := func(b []byte, v uint64) []byte {
		for v >= 0x80 {
			b = append(b, byte(v)|0x80)
			v >>= 7
		}
		return append(b, byte(v))
	}
	block := func(fields, dataArea []byte) []byte {
		hdr := append(vint(nil, uint64(len(fields))), fields...)
		out := binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(hdr))
		return append(append(out, hdr...), dataArea...)
	}
	out := []byte("Rar!\x1a\x07\x01\x00")
	out = append(out, block([]byte{1, 0, 0}, nil)...)
	var f []byte
	f = vint(f, 2)                 // file header
	f = vint(f, 0x0002)            // data area present
	f = vint(f, uint64(len(data))) // data size
	f = vint(f, 0)                 // file flags: no CRC
	f = vint(f, unpacked)
	f = vint(f, 0x20) // attributes
	f = vint(f, method<<7|dictLog<<10)
	f = vint(f, 0) // Windows
	f = vint(f, uint64(len(name)))
	f = append(f, name...)
	out = append(out, block(f, data)...)
	return append(out, block([]byte{5, 0, 0}, nil)...)
}

// Bzip2Bomb returns a 79-byte bzip2 stream of 64 MiB of zero bytes, made
// by `head -c 64M /dev/zero | bzip2 -9` (Go has no bzip2 encoder).
func Bzip2Bomb() []byte { return append([]byte(nil), bzip2Zeros64M...) }

var bzip2Zeros64M = []byte{
	0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59, 0x0e, 0x09,
	0xe2, 0xdf, 0x01, 0x5f, 0x8e, 0x40, 0x00, 0xc0, 0x00, 0x00, 0x08, 0x20,
	0x00, 0x30, 0x80, 0x4d, 0x46, 0x42, 0xa0, 0x25, 0xa9, 0x0a, 0x80, 0x97,
	0x31, 0x41, 0x59, 0x26, 0x53, 0x59, 0xbc, 0x04, 0xb5, 0xc3, 0x00, 0xa2,
	0x75, 0xc0, 0x00, 0xc0, 0x00, 0x00, 0x08, 0x20, 0x00, 0x20, 0xa4, 0x08,
	0x36, 0x32, 0x8a, 0x88, 0x4d, 0x2a, 0x2a, 0x21, 0x38, 0xbb, 0x92, 0x29,
	0xc2, 0x84, 0x85, 0x00, 0xbb, 0x83, 0xe8,
}

// SevenZipHeader returns a 7z archive whose plain header record is h
// (starting with kHeader, 0x01) and which holds no packed streams: the
// header's counts are whatever h says.
func SevenZipHeader(h []byte) []byte {
	return append(signature(0, h), h...)
}

// SevenZipFiles is a header record declaring n files and nothing else
// about them: five bytes that ask the reader for n file headers.
func SevenZipFiles(n uint64) []byte {
	b := []byte{0x01, 0x05} // kHeader, kFilesInfo
	b = num(b, n)
	return append(b, 0x00, 0x00) // end of FilesInfo, end of Header
}

// Copy is the 7z Copy method: the packed bytes are the data.
var Copy = []byte{0x00}
