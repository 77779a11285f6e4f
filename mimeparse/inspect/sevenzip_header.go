package inspect

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"strings"
	"unsafe"

	"github.com/bodgit/sevenzip"
)

// The 7z reader (github.com/bodgit/sevenzip) sizes its slices from the
// counts the archive's header declares: files, folders, pack streams,
// coders, bind pairs, CRC, time and attribute vectors, property sizes. It
// allocates them before it reads what they count, and before it checks the
// header's CRC: five header bytes that declare 4 Mi files cost 512 MiB.
// sevenZipHeaderCheck walks the header first, the way the reader will,
// adds up what the reader would allocate without allocating it, and
// refuses an archive whose header asks for more than limits.archive_dict
// (defect limit-archive-dict; see docs/policy.md). A header that is itself
// packed (kEncodedHeader, as 7-Zip writes by default) is decoded through
// the same bounded decoders (dict.go) and walked as it is decoded.

// sevenZipVerdict is what sevenZipHeaderCheck says of an archive.
type sevenZipVerdict int

const (
	sevenZipOpen    sevenZipVerdict = iota // the reader may parse it (it may still fail, cheaply)
	sevenZipTooBig                         // the header asks for more memory than the limit
	sevenZipCorrupt                        // a packed header that cannot be decoded and walked first
)

// errSZCost and errSZStop end a header walk: over budget, or at a point
// where the 7z reader stops too (truncated, or an id it refuses).
var (
	errSZCost = errors.New("inspect: 7z header asks for too much memory")
	errSZStop = errors.New("inspect: 7z header ends")
)

type szAbort struct{ err error }

// Bytes the 7z reader allocates for each file once its header is read
// (the FileHeader vector, then a *File each in Reader.File).
var (
	szFileHeader = uint64(unsafe.Sizeof(sevenzip.FileHeader{}))
	szFile       = uint64(unsafe.Sizeof(sevenzip.File{})) + 8
)

// szWalk follows one header record, counting the reader's allocations.
type szWalk struct {
	r      *bufio.Reader
	cost   uint64
	budget uint64
	record bool   // keep the bytes read in rec (the packed header's streams info)
	rec    []byte // bytes read while record
	subs   bool   // the streams info had a SubStreamsInfo
}

func (p *szWalk) fail(err error) { panic(szAbort{err}) }

// charge adds n allocations of each bytes.
func (p *szWalk) charge(n, each uint64) {
	hi, lo := bits.Mul64(n, each)
	if hi != 0 || lo > p.budget-p.cost {
		p.fail(errSZCost)
	}
	p.cost += lo
}

func (p *szWalk) byte() byte {
	b, err := p.r.ReadByte()
	if err != nil {
		p.fail(errSZStop)
	}
	if p.record {
		p.rec = append(p.rec, b)
	}
	return b
}

func (p *szWalk) skip(n uint64) {
	if p.record {
		for ; n > 0; n-- {
			p.byte()
		}
		return
	}
	for n > 0 {
		k := int(min(n, 1<<16))
		if m, err := p.r.Discard(k); m != k || err != nil {
			p.fail(errSZStop)
		}
		n -= uint64(k)
	}
}

// num reads a 7z NUMBER (sevenzip readUint64).
func (p *szWalk) num() uint64 {
	b := p.byte()
	l := bits.LeadingZeros8(^b)
	var v uint64
	if l < 7 {
		v |= uint64(b&((1<<(8-l))-1)) << (8 * l)
	}
	for i := 0; i < l; i++ {
		v |= uint64(p.byte()) << (8 * i)
	}
	return v
}

// check is sevenzip's checkUint64: the reader refuses the value.
func (p *szWalk) check(v uint64, nonZero bool) {
	if nonZero && v == 0 || v > math.MaxUint32 || v > uint64(math.MaxInt) {
		p.fail(errSZStop)
	}
}

func (p *szWalk) bounded(nonZero bool) uint64 {
	v := p.num()
	p.check(v, nonZero)
	return v
}

func (p *szWalk) expect(id byte) {
	if p.byte() != id {
		p.fail(errSZStop)
	}
}

// bools reads a bit vector of count bits (grown by append: twice count);
// it returns how many are set.
func (p *szWalk) bools(count uint64) uint64 {
	p.check(count, true)
	set := uint64(0)
	for i := uint64(0); i < count; i += 8 {
		p.charge(8, 2)
		b := p.byte()
		if n := count - i; n < 8 {
			b &= 0xff << (8 - n)
		}
		set += uint64(bits.OnesCount8(b))
	}
	return set
}

// optionalBools: an "all defined" byte, else a bit vector.
func (p *szWalk) optionalBools(count uint64) uint64 {
	if p.byte() == 0 {
		return p.bools(count)
	}
	p.charge(count, 1)
	return count
}

func (p *szWalk) sizes(count uint64) {
	p.check(count, true)
	for i := uint64(0); i < count; i++ {
		p.charge(1, 16)
		p.num()
	}
}

func (p *szWalk) crcs(count uint64) {
	p.check(count, true)
	set := p.optionalBools(count)
	p.charge(count, 4)
	p.skip(4 * set)
}

func (p *szWalk) packInfo() {
	p.num()
	streams := p.bounded(true)
	id := p.byte()
	if id == 0x09 { // kSize
		p.sizes(streams)
		id = p.byte()
	}
	if id == 0x0a { // kCRC
		p.crcs(streams)
		id = p.byte()
	}
	if id != 0x00 {
		p.fail(errSZStop)
	}
}

// folder reads one folder and returns its number of out streams. Opening
// the folder later allocates a reader slot per in and out stream; that is
// charged here.
func (p *szWalk) folder() uint64 {
	coders := p.bounded(true)
	var in, out uint64
	for i := uint64(0); i < coders; i++ {
		p.charge(1, 96)
		v := p.byte()
		p.skip(uint64(v & 0xf))
		cin, cout := uint64(1), uint64(1)
		if v&0x10 != 0 {
			cin = p.bounded(true)
			cout = p.bounded(true)
		}
		if v&0x20 != 0 {
			size := p.bounded(true)
			p.charge(size, 1)
			p.skip(size)
		}
		in += cin
		out += cout
	}
	p.check(in, true)
	p.check(out, true)
	if in < out {
		p.fail(errSZStop)
	}
	p.charge(in+out, 24)
	pairs := out - 1
	for i := uint64(0); i < pairs; i++ {
		p.charge(1, 48)
		p.bounded(false)
		p.bounded(false)
	}
	packed := in - pairs
	if packed == 1 {
		p.charge(in, 16)
		return out
	}
	p.charge(packed, 8)
	for i := uint64(0); i < packed; i++ {
		p.num()
	}
	return out
}

// unpackInfo returns the number of folders.
func (p *szWalk) unpackInfo() uint64 {
	p.expect(0x0b) // kFolder
	folders := p.bounded(true)
	if p.byte() != 0 { // external: the reader refuses it
		p.fail(errSZStop)
	}
	outs := make([]uint64, 0, min(folders, 1024))
	for i := uint64(0); i < folders; i++ {
		p.charge(1, 2*8+128)
		outs = append(outs, p.folder())
	}
	p.expect(0x0c) // kCodersUnpackSize
	for _, out := range outs {
		p.check(out, true)
		p.charge(out, 8)
		for j := uint64(0); j < out; j++ {
			p.num()
		}
	}
	id := p.byte()
	if id == 0x0a {
		p.crcs(folders)
		id = p.byte()
	}
	if id != 0x00 {
		p.fail(errSZStop)
	}
	return folders
}

func (p *szWalk) subStreamsInfo(folders uint64) {
	p.subs = true
	id := p.byte()
	p.charge(folders, 8)
	streams := make([]uint64, folders)
	files := uint64(0)
	for i := range streams {
		streams[i] = 1
		if id == 0x0d { // kNumUnpackStream
			streams[i] = p.num()
		}
		files += streams[i]
	}
	if id == 0x0d {
		id = p.byte()
	}
	p.check(files, false)
	if id == 0x09 {
		p.charge(files, 8)
		for _, n := range streams {
			for j := uint64(1); j < n; j++ {
				p.num()
			}
		}
		id = p.byte()
	}
	if id == 0x0a {
		p.crcs(files)
		id = p.byte()
	}
	if id != 0x00 {
		p.fail(errSZStop)
	}
}

// streamsInfo returns the number of folders.
func (p *szWalk) streamsInfo() uint64 {
	folders := uint64(0)
	id := p.byte()
	if id == 0x06 { // kPackInfo
		p.packInfo()
		id = p.byte()
	}
	if id == 0x07 { // kUnpackInfo
		folders = p.unpackInfo()
		id = p.byte()
	}
	if id == 0x08 { // kSubStreamsInfo
		if folders == 0 {
			p.fail(errSZStop)
		}
		p.subStreamsInfo(folders)
		id = p.byte()
	}
	if id != 0x00 {
		p.fail(errSZStop)
	}
	return folders
}

// vector is a per-file property of each bytes a file, with its own
// "defined" vector and external byte (times, attributes).
func (p *szWalk) vector(files, each, read uint64) {
	set := p.optionalBools(files)
	if p.byte() != 0 {
		p.fail(errSZStop)
	}
	p.charge(files, each)
	p.skip(read * set)
}

// names reads length-1 bytes of NUL-terminated UTF-16 names.
func (p *szWalk) names(files, length uint64) {
	if p.byte() != 0 {
		p.fail(errSZStop)
	}
	p.charge(files, 16)
	n := int64(length - 1)
	if n < 0 {
		n = 0
	}
	count, open := uint64(0), false
	for i := int64(0); i+1 < n; i += 2 {
		p.charge(2, 2) // the strings, and the scanner's buffer
		lo, err1 := p.r.ReadByte()
		hi, err2 := p.r.ReadByte()
		if err1 != nil || err2 != nil {
			p.fail(errSZStop)
		}
		if lo == 0 && hi == 0 {
			count, open = count+1, false
		} else {
			open = true
		}
	}
	if n%2 == 1 {
		p.skip(1)
		open = true
	}
	if open {
		count++
	}
	if count != files {
		p.fail(errSZStop)
	}
}

func (p *szWalk) filesInfo() {
	files := p.bounded(true)
	p.charge(files, szFileHeader+szFile)
	empty := uint64(0)
	for {
		prop := p.byte()
		if prop == 0x00 {
			return
		}
		length := p.num()
		switch prop {
		case 0x0e: // kEmptyStream
			empty += p.bools(files)
		case 0x0f: // kEmptyFile
			p.bools(empty)
		case 0x12, 0x13, 0x14: // kCTime, kATime, kMTime
			p.check(files, true)
			p.vector(files, 24, 8)
		case 0x11: // kName
			p.check(files, true)
			p.names(files, length)
		case 0x15: // kWinAttributes
			p.check(files, true)
			p.vector(files, 4, 4)
		case 0x19: // kDummy
			if int64(length) < 0 {
				p.fail(errSZStop)
			}
			p.skip(length)
		default:
			p.fail(errSZStop)
		}
	}
}

// header walks a Header record, after its kHeader byte.
func (p *szWalk) header() {
	id := p.byte()
	folders := uint64(0)
	if id == 0x04 { // kMainStreamsInfo
		folders = p.streamsInfo()
		id = p.byte()
	}
	p.charge(folders, 64) // the stream map and a pool per folder
	if id == 0x05 {       // kFilesInfo
		p.filesInfo()
		id = p.byte()
	}
	if id != 0x00 {
		p.fail(errSZStop)
	}
}

// run walks with f and returns how the walk ended: nil (the record is
// whole), errSZStop or errSZCost.
func (p *szWalk) run(f func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			a, ok := v.(szAbort)
			if !ok {
				panic(v)
			}
			err = a.err
		}
	}()
	f()
	return nil
}

var sevenZipSignature = []byte{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c}

// sevenZipStart finds the signature header sevenzip.NewReader will use
// (the first, in the first MiB, whose start header's CRC is right) and
// returns its offset and start header; ok is false where the reader fails
// before it reads a header.
func sevenZipStart(src readerAtSize) (off int64, offset, size uint64, ok bool) {
	chunk := make([]byte, 4096+len(sevenZipSignature))
	for base := int64(0); base < 1<<20; base += 4096 {
		n, err := src.ReadAt(chunk, base)
		for i := 0; ; {
			j := bytes.Index(chunk[i:n], sevenZipSignature)
			if j < 0 {
				break
			}
			at := base + int64(i+j)
			var sh [32]byte
			if m, _ := src.ReadAt(sh[:], at); m != len(sh) {
				return 0, 0, 0, false // the reader stops at a short header
			}
			if crc32.ChecksumIEEE(sh[12:]) == binary.LittleEndian.Uint32(sh[8:]) {
				return at, binary.LittleEndian.Uint64(sh[12:]), binary.LittleEndian.Uint64(sh[20:]), true
			}
			if at == 0 {
				return 0, 0, 0, false
			}
			i += j + 1
		}
		if err != nil {
			break
		}
	}
	return 0, 0, 0, false
}

// sevenZipHeaderCheck walks the header of the 7z archive in src as
// sevenzip.NewReader will, within budget bytes of the reader's
// allocations; a packed header is decoded with decoders bounded by dict.
func sevenZipHeaderCheck(src readerAtSize, budget, dict int64) sevenZipVerdict {
	off, offset, size, ok := sevenZipStart(src)
	if !ok || int64(offset) < 0 || off+32 > math.MaxInt64-int64(offset) {
		return sevenZipOpen
	}
	end := off + 32 + int64(offset)
	p := &szWalk{r: bufio.NewReader(io.NewSectionReader(src, end, int64(size))), budget: uint64(budget)}
	var folders uint64
	err := p.run(func() {
		switch p.byte() {
		case 0x01: // kHeader
			p.header()
		case 0x17: // kEncodedHeader
			p.record = true
			folders = p.streamsInfo()
			p.record = false
		default:
			p.fail(errSZStop)
		}
	})
	switch {
	case err == errSZCost:
		return sevenZipTooBig
	case err != nil || folders == 0:
		return sevenZipOpen // plain header walked, or the reader fails here too
	case folders != 1:
		return sevenZipOpen // the reader wants one folder for its header
	case p.subs:
		return sevenZipCorrupt // 7-Zip writes none for the header; not walked
	}

	// Decode the packed header: the same streams info, as the one file of
	// an archive whose plain header says so, over the same packed bytes.
	h := append([]byte{0x01, 0x04}, p.rec...)
	h = append(h, 0x05, 0x01, 0x11, 0x05, 0x00, 'h', 0, 0, 0, 0x00, 0x00)
	syn := &szSynthetic{src: src, base: off + 32, n: int64(offset), tail: h}
	syn.head = sevenZipSignatureHeader(uint64(offset), h)
	var rc io.ReadCloser
	if sevenZipCall(dict, func() {
		zr, err := sevenzip.NewReader(syn, syn.Size())
		if err == nil && len(zr.File) == 1 {
			rc, err = zr.File[0].Open()
		}
		if err != nil {
			var re *sevenzip.ReadError
			if errors.As(err, &re) && re.Encrypted || strings.Contains(err.Error(), "password") {
				rc = encryptedHeader{}
			}
		}
	}) {
		if rc != nil {
			rc.Close()
		}
		return sevenZipTooBig
	}
	switch rc.(type) {
	case nil:
		return sevenZipCorrupt
	case encryptedHeader:
		return sevenZipOpen // the reader stops at the password
	}
	defer rc.Close()
	p.r = bufio.NewReader(rc)
	err = p.run(func() {
		p.expect(0x01)
		p.header()
	})
	if err == errSZCost {
		return sevenZipTooBig
	}
	return sevenZipOpen
}

// encryptedHeader marks a packed header the reader cannot decrypt.
type encryptedHeader struct{}

func (encryptedHeader) Read([]byte) (int, error) { return 0, io.EOF }
func (encryptedHeader) Close() error             { return nil }

// sevenZipSignatureHeader is the 32-byte signature header of an archive
// whose header record h starts offset bytes after it.
func sevenZipSignatureHeader(offset uint64, h []byte) []byte {
	s := append(append([]byte{}, sevenZipSignature...), 0, 4, 0, 0, 0, 0)
	s = binary.LittleEndian.AppendUint64(s, offset)
	s = binary.LittleEndian.AppendUint64(s, uint64(len(h)))
	s = binary.LittleEndian.AppendUint32(s, crc32.ChecksumIEEE(h))
	binary.LittleEndian.PutUint32(s[8:], crc32.ChecksumIEEE(s[12:]))
	return s
}

// szSynthetic reads as head, then src[base:base+n], then tail.
type szSynthetic struct {
	head    []byte
	src     io.ReaderAt
	base, n int64
	tail    []byte
}

func (s *szSynthetic) Size() int64 { return int64(len(s.head)) + s.n + int64(len(s.tail)) }

func (s *szSynthetic) ReadAt(b []byte, off int64) (int, error) {
	total := 0
	h := int64(len(s.head))
	for len(b) > 0 {
		var k int
		switch {
		case off < 0:
			return total, io.ErrUnexpectedEOF
		case off < h:
			k = copy(b, s.head[off:])
		case off < h+s.n:
			rel := off - h
			q := b[:min(int64(len(b)), s.n-rel)]
			var err error
			k, err = s.src.ReadAt(q, s.base+rel)
			if k < len(q) {
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				return total + k, err
			}
		case off < s.Size():
			k = copy(b, s.tail[off-h-s.n:])
		default:
			return total, io.EOF
		}
		b, off, total = b[k:], off+int64(k), total+k
	}
	return total, nil
}
