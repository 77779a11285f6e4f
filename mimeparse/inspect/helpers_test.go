package inspect

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"unicode/utf16"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// zent is one member for buildZip.
type zent struct {
	name  string
	data  []byte
	flags uint16 // e.g. 1: "encrypted"
	aes   bool   // WinZip AES extra field and method 99
	store bool
}

func buildZip(t testing.TB, ents ...zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Flags: e.flags}
		if e.store {
			fh.Method = zip.Store
		}
		if e.aes {
			fh.Method = 99
			fh.Extra = []byte{0x01, 0x99, 7, 0, 2, 0, 'A', 'E', 3, 8, 0}
			fh.CompressedSize64 = uint64(len(e.data))
			fh.UncompressedSize64 = uint64(len(e.data))
			w, err := zw.CreateRaw(fh)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(e.data)
			continue
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func buildTar(t testing.TB, files map[string][]byte, order ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range order {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0644, Size: int64(len(files[name])), Typeflag: tar.TypeReg})
		tw.Write(files[name])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Name = name
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

// cfbStream is one directory entry for buildCFBStreams: a stream with
// data, or a storage.
type cfbStream struct {
	name    string
	data    []byte
	storage bool
}

// buildCFB writes a compound file whose entries are empty streams (VBA and
// Macros as storages).
func buildCFB(names []string, rootCLSID []byte) []byte {
	var ss []cfbStream
	for _, n := range names {
		ss = append(ss, cfbStream{name: n, storage: n == "VBA" || n == "Macros"})
	}
	return buildCFBStreams(ss, rootCLSID)
}

// buildCFBStreams writes a version 3 compound file (512-byte sectors, at
// most 128 of them): sector 0 is the FAT, then the directory, the mini FAT,
// the mini stream (streams under 4096 bytes, in 64-byte mini sectors) and
// the regular streams.
func buildCFBStreams(streams []cfbStream, rootCLSID []byte) []byte {
	const ss = 512
	le := binary.LittleEndian
	nDir := (len(streams) + 1 + 3) / 4
	var mini, regular [][]byte
	var miniFAT []uint32
	type loc struct {
		start uint32
		size  int
	}
	locs := make([]loc, len(streams))
	for i, s := range streams {
		if s.storage || len(s.data) == 0 {
			locs[i] = loc{cfbEndOfChain, 0}
			continue
		}
		if len(s.data) < 4096 {
			first := uint32(len(miniFAT))
			n := (len(s.data) + 63) / 64
			for j := 0; j < n; j++ {
				next := uint32(len(miniFAT) + 1)
				if j == n-1 {
					next = cfbEndOfChain
				}
				miniFAT = append(miniFAT, next)
			}
			buf := make([]byte, n*64)
			copy(buf, s.data)
			mini = append(mini, buf)
			locs[i] = loc{first, len(s.data)}
			continue
		}
		regular = append(regular, s.data)
		locs[i] = loc{uint32(len(regular) - 1), len(s.data)} // fixed below
	}
	miniStream := bytes.Join(mini, nil)
	nMiniFAT := (len(miniFAT)*4 + ss - 1) / ss
	nMini := (len(miniStream) + ss - 1) / ss
	fat := make([]uint32, 128)
	for i := range fat {
		fat[i] = cfbFreeSect
	}
	fat[0] = 0xFFFFFFFD
	next := uint32(1)
	alloc := func(n int) uint32 { // a chain of n sectors
		if n == 0 {
			return cfbEndOfChain
		}
		first := next
		for j := 0; j < n; j++ {
			fat[next] = next + 1
			if j == n-1 {
				fat[next] = cfbEndOfChain
			}
			next++
		}
		return first
	}
	dirStart := alloc(nDir)
	miniFATStart := alloc(nMiniFAT)
	miniStart := alloc(nMini)
	regStart := make([]uint32, len(regular))
	for i, r := range regular {
		regStart[i] = alloc((len(r) + ss - 1) / ss)
	}
	out := make([]byte, ss*(1+int(next)))
	h := out[:ss]
	copy(h, magicOLE)
	le.PutUint16(h[0x18:], 0x3E)
	le.PutUint16(h[0x1A:], 3)
	le.PutUint16(h[0x1C:], 0xFFFE)
	le.PutUint16(h[0x1E:], 9)
	le.PutUint16(h[0x20:], 6)
	le.PutUint32(h[0x2C:], 1)
	le.PutUint32(h[0x30:], dirStart)
	le.PutUint32(h[0x38:], 4096)
	le.PutUint32(h[0x3C:], miniFATStart)
	le.PutUint32(h[0x40:], uint32(nMiniFAT))
	le.PutUint32(h[0x44:], cfbEndOfChain)
	for i := 0; i < 109; i++ {
		le.PutUint32(h[0x4C+4*i:], cfbFreeSect)
	}
	le.PutUint32(h[0x4C:], 0)
	sect := func(s uint32) []byte { return out[ss*(int(s)+1) : ss*(int(s)+2)] }
	for i, v := range fat {
		le.PutUint32(sect(0)[4*i:], v)
	}
	put := func(start uint32, data []byte) {
		for s := start; len(data) > 0; s = fat[s] {
			n := copy(sect(s), data)
			data = data[n:]
		}
	}
	mf := make([]byte, nMiniFAT*ss)
	for i := range mf {
		mf[i] = 0xFF
	}
	for i, v := range miniFAT {
		le.PutUint32(mf[4*i:], v)
	}
	if nMiniFAT > 0 {
		put(miniFATStart, mf)
	}
	if nMini > 0 {
		put(miniStart, miniStream)
	}
	for i, r := range regular {
		put(regStart[i], r)
	}
	dir := make([]byte, nDir*ss)
	entry := func(i int, name string, typ byte, start uint32, size int) {
		e := dir[128*i : 128*(i+1)]
		u := utf16.Encode([]rune(name))
		for j, c := range u {
			le.PutUint16(e[2*j:], c)
		}
		le.PutUint16(e[0x40:], uint16(2*len(u)+2))
		e[0x42] = typ
		le.PutUint32(e[0x44:], 0xFFFFFFFF)
		le.PutUint32(e[0x48:], 0xFFFFFFFF)
		le.PutUint32(e[0x4C:], 0xFFFFFFFF)
		le.PutUint32(e[0x74:], start)
		le.PutUint32(e[0x78:], uint32(size))
	}
	entry(0, "Root Entry", 5, miniStart, len(miniStream))
	copy(dir[0x50:0x60], rootCLSID)
	for i, s := range streams {
		typ := byte(2)
		if s.storage {
			typ = 1
		}
		start, size := locs[i].start, locs[i].size
		if !s.storage && size >= 4096 {
			start = regStart[start]
		}
		entry(i+1, s.name, typ, start, size)
	}
	put(dirStart, dir)
	return out
}

// biff builds BIFF8 records.
func biff(recs ...[]byte) []byte { return bytes.Join(recs, nil) }

func biffRec(typ uint16, data []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, typ)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

// xlsWorkbook is a workbook globals substream with one sheet of type dt
// (0 worksheet, 1 Excel 4.0 macro sheet), optionally encrypted (FilePass),
// padded to pad bytes.
func xlsWorkbook(dt byte, filePass bool, pad int) []byte {
	recs := [][]byte{biffRec(0x0809, make([]byte, 16))}
	if filePass {
		recs = append(recs, biffRec(0x002F, make([]byte, 54)))
	}
	recs = append(recs, biffRec(0x0085, append([]byte{0, 0, 0, 0, 1, dt, 6}, "Macro1"...)), biffRec(0x000A, nil))
	b := biff(recs...)
	if len(b) < pad {
		b = append(b, make([]byte, pad-len(b))...)
	}
	return b
}

// tnefAtt is one attachment for buildTNEF.
type tnefAtt struct {
	title, long string
	data        []byte
	obj         []byte // PR_ATTACH_DATA_OBJ value
	objType     uint16
}

func buildTNEF(atts ...tnefAtt) []byte {
	var b bytes.Buffer
	b.Write(magicTNEF)
	b.Write([]byte{0x01, 0x00}) // key
	attr := func(level byte, id uint32, data []byte) {
		b.WriteByte(level)
		binary.Write(&b, binary.LittleEndian, id)
		binary.Write(&b, binary.LittleEndian, uint32(len(data)))
		b.Write(data)
		var sum uint16
		for _, c := range data {
			sum += uint16(c)
		}
		binary.Write(&b, binary.LittleEndian, sum)
	}
	attr(1, 0x00089006, []byte{1, 0, 0, 0}) // attTnefVersion-ish message attribute
	for _, a := range atts {
		attr(2, 0x00069002, make([]byte, 14)) // attAttachRendData
		if a.title != "" {
			attr(2, 0x00018010, append([]byte(a.title), 0))
		}
		attr(2, 0x0006800F, a.data)
		if a.long != "" || a.obj != nil {
			attr(2, 0x00069005, buildMAPIProps(a.long, a.obj, a.objType))
		}
	}
	return b.Bytes()
}

// buildMAPIProps encodes a property list: PR_ATTACH_METHOD (int),
// PR_ATTACH_LONG_FILENAME (unicode) when long is set, and
// PR_ATTACH_DATA_OBJ of type objType (0x000D: object, with a 16-byte
// interface id first; 0x0102: binary) when obj is set.
func buildMAPIProps(long string, obj []byte, objType uint16) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	n := 1
	if long != "" {
		n++
	}
	if obj != nil {
		n++
	}
	binary.Write(&b, le, uint32(n))
	binary.Write(&b, le, uint16(0x0003))
	binary.Write(&b, le, uint16(0x3705))
	binary.Write(&b, le, uint32(5))
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	if long != "" {
		binary.Write(&b, le, uint16(0x001F))
		binary.Write(&b, le, uint16(0x3707))
		binary.Write(&b, le, uint32(1))
		u := utf16.Encode([]rune(long + "\x00"))
		binary.Write(&b, le, uint32(2*len(u)))
		for _, c := range u {
			binary.Write(&b, le, c)
		}
		pad()
	}
	if obj != nil {
		binary.Write(&b, le, objType)
		binary.Write(&b, le, uint16(0x3701))
		binary.Write(&b, le, uint32(1))
		if objType == 0x000D {
			iid := []byte{0x07, 0x03, 0x02, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46} // IID_IMessage
			obj = append(iid, obj...)
		}
		binary.Write(&b, le, uint32(len(obj)))
		b.Write(obj)
		pad()
	}
	return b.Bytes()
}

// uuencode encodes data as a uuencode block with CRLF line ends.
func uuencode(name string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString("begin 644 " + name + "\r\n")
	enc := func(v byte) byte {
		if v == 0 {
			return '`'
		}
		return v + 32
	}
	for len(data) > 0 {
		n := min(45, len(data))
		chunk := append([]byte(nil), data[:n]...)
		data = data[n:]
		b.WriteByte(byte(n) + 32)
		for len(chunk)%3 != 0 {
			chunk = append(chunk, 0)
		}
		for i := 0; i < len(chunk); i += 3 {
			c0, c1, c2 := chunk[i], chunk[i+1], chunk[i+2]
			b.WriteByte(enc(c0 >> 2))
			b.WriteByte(enc((c0<<4 | c1>>4) & 63))
			b.WriteByte(enc((c1<<2 | c2>>6) & 63))
			b.WriteByte(enc(c2 & 63))
		}
		b.WriteString("\r\n")
	}
	b.WriteString("`\r\nend\r\n")
	return b.Bytes()
}

// buildRAR5 writes a RAR 5 archive with one stored (uncompressed) file,
// following the RAR 5.0 archive format description.
func buildRAR5(t testing.TB, name string, data []byte) []byte {
	vint := func(b []byte, v uint64) []byte {
		for v >= 0x80 {
			b = append(b, byte(v)|0x80)
			v >>= 7
		}
		return append(b, byte(v))
	}
	block := func(fields []byte, dataArea []byte) []byte {
		// fields start with the header type
		var hs []byte
		hs = vint(hs, uint64(len(fields)))
		hdr := append(hs, fields...)
		out := binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(hdr))
		out = append(out, hdr...)
		return append(out, dataArea...)
	}
	out := []byte("Rar!\x1a\x07\x01\x00")
	// main archive header: type 1, flags 0, archive flags 0
	out = append(out, block([]byte{1, 0, 0}, nil)...)
	var f []byte
	f = vint(f, 2)                 // type: file
	f = vint(f, 0x0002)            // header flags: data area present
	f = vint(f, uint64(len(data))) // data size
	f = vint(f, 0x0004)            // file flags: CRC32 present
	f = vint(f, uint64(len(data))) // unpacked size
	f = vint(f, 0x20)              // attributes
	f = binary.LittleEndian.AppendUint32(f, crc32.ChecksumIEEE(data))
	f = vint(f, 0) // compression: version 0, store
	f = vint(f, 0) // host OS: Windows
	f = vint(f, uint64(len(name)))
	f = append(f, name...)
	out = append(out, block(f, data)...)
	// end of archive: type 5, flags 0, end flags 0
	return append(out, block([]byte{5, 0, 0}, nil)...)
}

// buildRAR5EncryptedHeaders writes the start of a RAR 5 archive whose
// headers are encrypted (rar -hp): signature, then an archive encryption
// header; nothing after it can be read without the password.
func buildRAR5EncryptedHeaders() []byte {
	fields := []byte{4, 0, 0, 0, 15} // type 4, flags 0, version 0, enc flags 0, KDF count
	fields = append(fields, make([]byte, 16)...)
	hdr := append([]byte{byte(len(fields))}, fields...)
	out := []byte("Rar!\x1a\x07\x01\x00")
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(hdr))
	out = append(out, hdr...)
	return append(out, make([]byte, 64)...)
}

// buildCab writes a cabinet header and CFFILE records (no data blocks:
// the lister never reads them).
func buildCab(names []string, sizes []uint32) []byte {
	le := binary.LittleEndian
	h := make([]byte, 36)
	copy(h, "MSCF")
	le.PutUint32(h[16:], 36+8) // coffFiles: after the header and one CFFOLDER
	h[24], h[25] = 3, 1
	le.PutUint16(h[26:], 1)
	le.PutUint16(h[28:], uint16(len(names)))
	out := append(h, make([]byte, 8)...) // CFFOLDER
	for i, n := range names {
		rec := make([]byte, 16)
		le.PutUint32(rec, sizes[i])
		out = append(append(append(out, rec...), n...), 0)
	}
	le.PutUint32(out[8:], uint32(len(out)))
	return out
}

func zstdBytes(t testing.TB, data []byte) []byte {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(data, nil)
}

func xzBytes(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	w, err := xz.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// isoFile is one file for buildISO, placed in the root or in one
// subdirectory.
type isoFile struct {
	dir, name, joliet string // joliet "" = no Joliet tree
	data              []byte
}

// buildISO writes an ISO 9660 image: 16 zero sectors, a primary volume
// descriptor, an optional Joliet supplementary descriptor, a terminator,
// the root directories (primary, Joliet) and the file data.
func buildISO(files []isoFile) []byte {
	const bs = 2048
	le, be := binary.LittleEndian, binary.BigEndian
	hasJoliet := false
	for _, f := range files {
		if f.joliet != "" {
			hasJoliet = true
		}
	}
	// layout: 16 PVD, 17 SVD?, next terminator, then dirs, then data
	sec := 17
	svd := 0
	if hasJoliet {
		svd, sec = 17, 18
	}
	term := sec
	rootP, rootJ := term+1, term+2
	dataStart := term + 3
	img := make([]byte, bs*(dataStart+len(files)*2+1))
	rec := func(extent, size int, dir bool, name []byte) []byte {
		n := 33 + len(name)
		if n%2 == 1 {
			n++
		}
		r := make([]byte, n)
		r[0] = byte(n)
		le.PutUint32(r[2:], uint32(extent))
		be.PutUint32(r[6:], uint32(extent))
		le.PutUint32(r[10:], uint32(size))
		be.PutUint32(r[14:], uint32(size))
		if dir {
			r[25] = 2
		}
		r[32] = byte(len(name))
		copy(r[33:], name)
		return r
	}
	ucs2 := func(s string) []byte {
		var b []byte
		for _, c := range utf16.Encode([]rune(s)) {
			b = be.AppendUint16(b, c)
		}
		return b
	}
	var dirP, dirJ []byte
	dirP = append(append(dirP, rec(rootP, bs, true, []byte{0})...), rec(rootP, bs, true, []byte{1})...)
	dirJ = append(append(dirJ, rec(rootJ, bs, true, []byte{0})...), rec(rootJ, bs, true, []byte{1})...)
	for i, f := range files {
		ext := dataStart + i
		copy(img[ext*bs:], f.data)
		dirP = append(dirP, rec(ext, len(f.data), false, []byte(f.name+";1"))...)
		if f.joliet != "" {
			dirJ = append(dirJ, rec(ext, len(f.data), false, ucs2(f.joliet+";1"))...)
		}
	}
	copy(img[rootP*bs:], dirP)
	copy(img[rootJ*bs:], dirJ)
	vd := func(s int, typ byte, root int) {
		d := img[s*bs:]
		d[0] = typ
		copy(d[1:], "CD001")
		d[6] = 1
		if typ == 255 {
			return
		}
		le.PutUint16(d[128:], bs)
		copy(d[156:], rec(root, bs, true, []byte{0}))
	}
	vd(16, 1, rootP)
	if hasJoliet {
		vd(svd, 2, rootJ)
		copy(img[svd*bs+88:], "%/E")
	}
	vd(term, 255, 0)
	return img
}
