package inspect

import (
	"runtime"
	"testing"

	"mailgate/internal/hostile"
)

const gib = 1 << 30

// allocDuring returns the bytes allocated while f runs.
func allocDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestLyingDictionary: archives whose headers ask a decoder for gigabytes
// of dictionary or model are refused from the headers, as
// limit-archive-dict, without allocating it; the same formats with an
// honest header are still decoded and sniffed.
func TestLyingDictionary(t *testing.T) {
	pe := minimalPE()
	lzmaProps, lzmaData := hostile.LZMARaw(pe)
	lying := []struct {
		name string
		body []byte
	}{
		{"7z-lzma2", hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.LZMA2, Props: []byte{hostile.LZMA2Props(3 * gib)}}, hostile.LZMA2Raw(pe), uint64(len(pe)))},
		{"7z-ppmd", hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.PPMd, Props: hostile.DictProps(6, 3*gib)}, make([]byte, 64), uint64(len(pe)))},
		{"7z-lzma", hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.LZMA, Props: hostile.DictProps(0x5d, 3*gib)}, lzmaData, 3*gib)},
		{"7z-lzma-header", hostile.SevenZipEncodedHeader(hostile.Coder{ID: hostile.LZMA, Props: hostile.DictProps(0x5d, 3*gib)}, make([]byte, 64), 3*gib)},
		{"7z-lzma2-header", hostile.SevenZipEncodedHeader(hostile.Coder{ID: hostile.LZMA2, Props: []byte{hostile.LZMA2Props(3 * gib)}}, make([]byte, 64), 1000)},
		{"7z-zstd", hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.Zstd}, hostile.ZstdWindow(pe, 31), uint64(len(pe)))},
		{"xz", hostile.Xz(pe, 3*gib)},
		{"zstd", hostile.ZstdWindow(pe, 31)},
		{"rar5", hostile.RAR5("a.exe", make([]byte, 64), 3, 15, 4*gib)},
	}
	for _, c := range lying {
		t.Run(c.name, func(t *testing.T) {
			var r Result
			alloc := allocDuring(func() { r = inspectBytes(t, Options{SpillDir: t.TempDir()}, c.body) })
			t.Logf("%d-byte %s: %d bytes allocated, defects %q", len(c.body), c.name, alloc, r.Defects)
			// LZMA allocates min(dictionary, unpacked size): to ask for
			// 3 GiB the entry must claim 3 GiB, which the stream-size
			// bound (sevenZipMaxStream) refuses first.
			if !hasDefect(r, DefectLimitArchiveDict) && !(c.name == "7z-lzma" && hasDefect(r, DefectLimitArchiveBytes)) {
				t.Errorf("defects %q, archive %+v", r.Defects, r.Archive)
			}
			if alloc > 32<<20 {
				t.Errorf("allocated %d bytes", alloc)
			}
			for _, e := range r.Archive {
				if e.Executable || e.DetectedType != "" {
					t.Errorf("entry decoded anyway: %+v", e)
				}
			}
		})
	}
	// The same decoders with an honest header decode and sniff the PE.
	honest := []struct {
		name string
		body []byte
	}{
		{"7z-lzma2", hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.LZMA2, Props: []byte{hostile.LZMA2Props(1 << 16)}}, hostile.LZMA2Raw(pe), uint64(len(pe)))},
		{"7z-lzma", hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.LZMA, Props: lzmaProps}, lzmaData, uint64(len(pe)))},
		{"7z-zstd", hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.Zstd}, hostile.ZstdWindow(pe, 20), uint64(len(pe)))},
		{"xz", hostile.Xz(pe, 1<<20)},
		{"zstd", hostile.ZstdWindow(pe, 20)},
	}
	for _, c := range honest {
		t.Run("honest-"+c.name, func(t *testing.T) {
			r := inspectBytes(t, Options{SpillDir: t.TempDir()}, c.body)
			if len(r.Defects) != 0 || len(r.Archive) != 1 || !r.Archive[0].Executable {
				t.Errorf("defects %q, archive %+v", r.Defects, r.Archive)
			}
		})
	}
	// A dictionary within a raised limit is allowed.
	r := inspectBytes(t, Options{SpillDir: t.TempDir(), ArchiveDict: 4 << 20}, hostile.Xz(pe, 8<<20))
	if !hasDefect(r, DefectLimitArchiveDict) {
		t.Errorf("8 MiB xz dictionary under a 4 MiB limit: %q", r.Defects)
	}
	r = inspectBytes(t, Options{SpillDir: t.TempDir(), ArchiveDict: 16 << 20}, hostile.Xz(pe, 8<<20))
	if len(r.Defects) != 0 || len(r.Archive) != 1 || !r.Archive[0].Executable {
		t.Errorf("8 MiB xz dictionary under a 16 MiB limit: %q %+v", r.Defects, r.Archive)
	}
}
