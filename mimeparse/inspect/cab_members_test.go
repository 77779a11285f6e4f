package inspect

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"testing"
)

// buildCabData writes a one-folder cabinet whose members' bytes are in
// CFDATA blocks: stored (method 0) or MSZIP (method 1, one deflate stream
// per 32 KiB block, each with the previous block as dictionary).
func buildCabData(t testing.TB, method uint16, names []string, files [][]byte) []byte {
	t.Helper()
	le := binary.LittleEndian
	var stream []byte
	offs := make([]uint32, len(files))
	for i, f := range files {
		offs[i] = uint32(len(stream))
		stream = append(stream, f...)
	}
	var recs []byte
	for i, n := range names {
		rec := make([]byte, 16)
		le.PutUint32(rec, uint32(len(files[i])))
		le.PutUint32(rec[4:], offs[i])
		recs = append(append(append(recs, rec...), n...), 0)
	}
	var blocks []byte
	nblocks := 0
	var hist []byte
	for len(stream) > 0 {
		chunk := stream[:min(len(stream), 32<<10)]
		stream = stream[len(chunk):]
		data := chunk
		if method == 1 {
			var b bytes.Buffer
			zw, _ := flate.NewWriterDict(&b, flate.BestCompression, hist)
			zw.Write(chunk)
			zw.Close()
			data = append([]byte("CK"), b.Bytes()...)
			hist = chunk
		}
		h := make([]byte, 8)
		le.PutUint16(h[4:], uint16(len(data)))
		le.PutUint16(h[6:], uint16(len(chunk)))
		blocks = append(append(blocks, h...), data...)
		nblocks++
	}
	h := make([]byte, 36)
	copy(h, "MSCF")
	le.PutUint32(h[16:], 36+8)
	h[24], h[25] = 3, 1
	le.PutUint16(h[26:], 1)
	le.PutUint16(h[28:], uint16(len(names)))
	folder := make([]byte, 8)
	le.PutUint32(folder, uint32(36+8+len(recs)))
	le.PutUint16(folder[4:], uint16(nblocks))
	le.PutUint16(folder[6:], method)
	out := append(append(append(h, folder...), recs...), blocks...)
	le.PutUint32(out[8:], uint32(len(out)))
	return out
}

// TestCabMembers: the members of stored and MSZIP folders are inspected
// (a renamed executable is found, a zip inside is opened); LZX folders are
// listed by name only.
func TestCabMembers(t *testing.T) {
	pe := minimalPE()
	big := bytes.Repeat([]byte("filler text "), 8000) // > 32 KiB: several blocks
	inner := buildZip(t, zent{name: "deep.exe", data: pe})
	for _, method := range []uint16{0, 1} {
		cab := buildCabData(t, method, []string{"readme.txt", "big.txt", "photo.jpg", "docs.zip"}, [][]byte{[]byte("hello\r\n"), big, pe, inner})
		res := inspectBytes(t, Options{ArchiveDepth: 3}, cab)
		got := map[string]Entry{}
		for _, e := range res.Archive {
			got[e.Name] = e
		}
		if e := got["photo.jpg"]; !e.Executable {
			t.Errorf("method %d: photo.jpg (a PE) not executable: %+v", method, e)
		}
		if e := got["deep.exe"]; !e.Executable || e.Depth != 2 {
			t.Errorf("method %d: deep.exe in docs.zip: %+v (entries %v)", method, e, res.Archive)
		}
		if e := got["big.txt"]; e.DetectedType != "text/plain" {
			t.Errorf("method %d: big.txt: %+v", method, e)
		}
		if len(res.Defects) > 0 {
			t.Errorf("method %d: defects %q", method, res.Defects)
		}
	}
	lzx := buildCabData(t, 3, []string{"setup.bin"}, [][]byte{pe})
	res := inspectBytes(t, Options{ArchiveDepth: 3}, lzx)
	if len(res.Archive) != 1 || res.Archive[0].Executable || res.Archive[0].DetectedType != "" {
		t.Errorf("LZX folder: %+v", res.Archive)
	}
}
