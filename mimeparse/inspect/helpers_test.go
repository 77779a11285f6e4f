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

// buildCFB writes a minimal compound file (version 3, 512-byte sectors):
// sector 0 is the FAT, sectors 1.. hold the directory (root entry plus one
// entry per name).
func buildCFB(names []string, rootCLSID []byte) []byte {
	entries := append([]string{"Root Entry"}, names...)
	nDir := (len(entries) + 3) / 4
	out := make([]byte, 512*(1+1+nDir))
	h := out[:512]
	copy(h, magicOLE)
	binary.LittleEndian.PutUint16(h[0x18:], 0x3E)
	binary.LittleEndian.PutUint16(h[0x1A:], 3)
	binary.LittleEndian.PutUint16(h[0x1C:], 0xFFFE)
	binary.LittleEndian.PutUint16(h[0x1E:], 9)
	binary.LittleEndian.PutUint16(h[0x20:], 6)
	binary.LittleEndian.PutUint32(h[0x2C:], 1) // one FAT sector
	binary.LittleEndian.PutUint32(h[0x30:], 1) // directory starts at sector 1
	binary.LittleEndian.PutUint32(h[0x38:], 4096)
	binary.LittleEndian.PutUint32(h[0x3C:], cfbEndOfChain)
	binary.LittleEndian.PutUint32(h[0x44:], cfbEndOfChain)
	for i := 0; i < 109; i++ {
		binary.LittleEndian.PutUint32(h[0x4C+4*i:], cfbFreeSect)
	}
	binary.LittleEndian.PutUint32(h[0x4C:], 0) // FAT in sector 0
	fat := out[512:1024]
	for i := 0; i < 128; i++ {
		binary.LittleEndian.PutUint32(fat[4*i:], cfbFreeSect)
	}
	binary.LittleEndian.PutUint32(fat[0:], 0xFFFFFFFD) // FAT sector
	for i := 0; i < nDir; i++ {
		next := uint32(2 + i)
		if i == nDir-1 {
			next = cfbEndOfChain
		}
		binary.LittleEndian.PutUint32(fat[4*(1+i):], next)
	}
	for i, name := range entries {
		e := out[1024+128*i : 1024+128*(i+1)]
		u := utf16.Encode([]rune(name))
		for j, c := range u {
			binary.LittleEndian.PutUint16(e[2*j:], c)
		}
		binary.LittleEndian.PutUint16(e[0x40:], uint16(2*len(u)+2))
		e[0x42] = 2 // stream
		if i == 0 {
			e[0x42] = 5
			copy(e[0x50:], rootCLSID)
		} else if name == "VBA" || name == "Macros" {
			e[0x42] = 1 // storage
		}
		binary.LittleEndian.PutUint32(e[0x44:], 0xFFFFFFFF)
		binary.LittleEndian.PutUint32(e[0x48:], 0xFFFFFFFF)
		binary.LittleEndian.PutUint32(e[0x4C:], 0xFFFFFFFF)
	}
	return out
}

// tnefAtt is one attachment for buildTNEF.
type tnefAtt struct {
	title, long string
	data        []byte
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
		if a.long != "" {
			attr(2, 0x00069005, mapiProps(a.long))
		}
	}
	return b.Bytes()
}

// mapiProps encodes a property list: PR_ATTACH_METHOD (int) and
// PR_ATTACH_LONG_FILENAME (unicode).
func mapiProps(long string) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(2))
	binary.Write(&b, binary.LittleEndian, uint16(0x0003))
	binary.Write(&b, binary.LittleEndian, uint16(0x3705))
	binary.Write(&b, binary.LittleEndian, uint32(1))
	binary.Write(&b, binary.LittleEndian, uint16(0x001F))
	binary.Write(&b, binary.LittleEndian, uint16(0x3707))
	binary.Write(&b, binary.LittleEndian, uint32(1))
	u := utf16.Encode([]rune(long + "\x00"))
	binary.Write(&b, binary.LittleEndian, uint32(2*len(u)))
	for _, c := range u {
		binary.Write(&b, binary.LittleEndian, c)
	}
	for b.Len()%4 != 0 {
		b.WriteByte(0)
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
