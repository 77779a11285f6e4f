package inspect

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"mailgate/internal/hostile"
)

// TestSevenZipHeaderCounts: a 7z header of a few bytes can declare
// millions of files (or CRCs, times, attributes, pack streams), and the 7z
// reader allocates a slot for each before it reads one. The inspector
// refuses such a header as limit-archive-dict without allocating it, and
// still lists archives whose header is encoded (compressed) the same way.
func TestSevenZipHeaderCounts(t *testing.T) {
	num := func(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(append(b, 0xff), v) }
	files := hostile.SevenZipFiles(4 << 20)
	// kHeader, kMainStreamsInfo, kPackInfo at 0 of 100 Mi streams, kCRC
	// all defined (a bool and a CRC slot each), then nothing.
	crcs := num(num([]byte{0x01, 0x04, 0x06}, 0), 100<<20)
	crcs = append(crcs, 0x0a, 0x01)
	// kUnpackInfo, kFolder, one folder of one coder (Copy) whose
	// properties are 512 MiB long, then nothing.
	props := num([]byte{0x01, 0x04, 0x07, 0x0b}, 1)
	props = num(append(props, 0x00, 0x01, 0x21, 0x00), 512<<20)
	cases := []struct {
		name string
		body []byte
	}{
		{"files", hostile.SevenZipHeader(files)},
		{"files-encoded", hostile.SevenZipEncodedHeader(hostile.Coder{ID: hostile.Copy}, files, uint64(len(files)))},
		{"pack-crcs", hostile.SevenZipHeader(crcs)},
		{"coder-props", hostile.SevenZipHeader(props)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r := inspectBytes(t, Options{SpillDir: t.TempDir()}, c.body)
			runtime.ReadMemStats(&after)
			d := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d-byte archive: allocated %d bytes, defects %v", len(c.body), d, r.Defects)
			if d > 64<<20 {
				t.Errorf("allocated %d bytes for a %d-byte archive", d, len(c.body))
			}
			if !slices.Contains(r.Defects, DefectLimitArchiveDict) {
				t.Errorf("defects %v, want %s", r.Defects, DefectLimitArchiveDict)
			}
		})
	}
}

// emptyFilesHeader is a 7z header record listing n empty files named
// f0, f1, ...
func emptyFilesHeader(n int) []byte {
	num := func(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(append(b, 0xff), v) }
	b := []byte{0x01, 0x05} // kHeader, kFilesInfo
	b = num(b, uint64(n))
	bitsLen := (n + 7) / 8
	b = append(b, 0x0e) // kEmptyStream
	b = num(b, uint64(bitsLen))
	for i := 0; i < bitsLen; i++ {
		b = append(b, 0xff)
	}
	var names []byte
	for i := 0; i < n; i++ {
		for _, c := range fmt.Sprintf("f%d", i) {
			names = append(names, byte(c), 0)
		}
		names = append(names, 0, 0)
	}
	b = append(b, 0x11) // kName
	b = num(b, uint64(1+len(names)))
	b = append(b, 0)
	b = append(b, names...)
	return append(b, 0x00, 0x00)
}

// TestSevenZipHeaderWalk: the walk follows real headers (7-Zip's packed
// ones in testdata, and a packed header listing 2000 files) to their end:
// it charges what their counts ask for, and lets them through at the
// default limit.
func TestSevenZipHeaderWalk(t *testing.T) {
	h := emptyFilesHeader(2000)
	many := hostile.SevenZipEncodedHeader(hostile.Coder{ID: hostile.Copy}, h, uint64(len(h)))
	bodies := map[string][]byte{"2000 files": many}
	for _, n := range []string{"t0.7z", "t1.7z", "t4.7z"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		bodies[n] = b
	}
	for name, b := range bodies {
		src := bytes.NewReader(b)
		if v := sevenZipHeaderCheck(src, DefaultArchiveDict, DefaultArchiveDict); v != sevenZipOpen {
			t.Errorf("%s: verdict %d at the default limit", name, v)
		}
		// The file headers alone cost more than 200 bytes each.
		if v := sevenZipHeaderCheck(src, 200, DefaultArchiveDict); v != sevenZipTooBig {
			t.Errorf("%s: verdict %d with a 200-byte budget", name, v)
		}
	}
	r := inspectBytes(t, Options{SpillDir: t.TempDir(), ArchiveEntries: 5000}, many)
	if len(r.Archive) != 2000 || len(r.Defects) != 0 || r.Archive[1999].Name != "f1999" {
		t.Errorf("2000 files: %d listed, defects %v", len(r.Archive), r.Defects)
	}
}

// FuzzSevenZipHeader: any 7z header record, plain or packed (Copy), behind
// a valid signature header (the start header's CRC is the one thing a
// mutation would break). Properties: no panic, and listing it allocates
// less than 128 MiB (the walk's limit is 64 MiB; the rest is the inspector).
func FuzzSevenZipHeader(f *testing.F) {
	num := func(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(append(b, 0xff), v) }
	f.Add(emptyFilesHeader(3), false)
	f.Add(emptyFilesHeader(3), true)
	f.Add(hostile.SevenZipFiles(4<<20), false)
	f.Add(append(num(num([]byte{0x01, 0x04, 0x06}, 0), 100<<20), 0x0a, 0x01), false)
	if b, err := os.ReadFile(filepath.Join("testdata", "t0.7z")); err == nil && len(b) > 32 {
		off := binary.LittleEndian.Uint64(b[12:])
		if off < uint64(len(b))-32 {
			f.Add(b[32+off:], false)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, h []byte, packed bool) {
		body := hostile.SevenZipHeader(h)
		if packed {
			body = hostile.SevenZipEncodedHeader(hostile.Coder{ID: hostile.Copy}, h, uint64(len(h)))
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		inspectBytes(t, Options{SpillDir: dir, ArchiveEntries: 50}, body)
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 128<<20 {
			t.Fatalf("allocated %d bytes for a %d-byte archive", d, len(body))
		}
	})
}
