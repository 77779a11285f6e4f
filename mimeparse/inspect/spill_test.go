package inspect

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestSpillFile: a container body goes to a 0600 temp file in SpillDir
// whose name is removed as soon as it is created (as proxy's spool does):
// the directory is empty while the spill is open, and nothing is left
// behind after Close, or if the process dies before it.
func TestSpillFile(t *testing.T) {
	dir := t.TempDir()
	body := buildZip(t, zent{name: "r.bin", data: randBytes(64 << 10), store: true})
	i := New(Options{SpillDir: dir})
	i.Write(body[:10000])
	if i.spill == nil || i.spill.f == nil {
		t.Fatal("no spill file")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 0 {
		t.Fatalf("spill files named during Write: %v", files)
	}
	st, err := i.spill.f.Stat()
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("spill file mode %v, %v", st.Mode(), err)
	}
	i.Write(body[10000:])
	r := i.Close()
	if len(r.Archive) != 1 || r.Archive[0].Name != "r.bin" {
		t.Fatalf("archive %+v", r.Archive)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Fatalf("left behind: %v", files)
	}
	// Plain bodies never touch the disk.
	i = New(Options{SpillDir: dir})
	i.Write(randBytes(100 << 10))
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Fatalf("a plain body was spilled: %v", files)
	}
	i.Close()
	// An unusable spill directory is a defect, not a failure.
	r = inspectBytes(t, Options{SpillDir: filepath.Join(dir, "missing")}, body)
	if !hasDefect(r, DefectSpillFailed) || r.SHA256 != sha(body) {
		t.Fatalf("spill failure: %+v", r.Defects)
	}
}

// TestSpillNestedUnlinked: the temp file of a nested container too large
// for memory (readAll) has no name either, from the moment it exists.
func TestSpillNestedUnlinked(t *testing.T) {
	dir := t.TempDir()
	inner := buildZip(t, zent{name: "big.bin", data: randBytes(2 << 20), store: true})
	body := buildZip(t, zent{name: "inner.zip", data: inner, store: true})
	var seen []string
	created := 0
	spillCreated = func(f *os.File) {
		created++
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		seen = append(seen, files...)
	}
	defer func() { spillCreated = nil }()
	r := inspectBytes(t, Options{SpillDir: dir}, body)
	if created < 2 || len(seen) != 0 {
		t.Fatalf("%d spill files created, names seen while open: %v", created, seen)
	}
	if len(r.Archive) != 2 || r.Archive[1].Name != "big.bin" {
		t.Fatalf("archive %+v", r.Archive)
	}
}

// TestSpillLimitStream: a TNEF body cut at the spill limit still lists the
// attachments before the cut.
func TestSpillLimitStream(t *testing.T) {
	body := buildTNEF(tnefAtt{title: "first.exe", data: minimalPE()}, tnefAtt{title: "big.bin", data: randBytes(200 << 10)})
	r := inspectBytes(t, Options{SpillDir: t.TempDir(), Spill: 100 << 10}, body)
	if !hasDefect(r, DefectLimitInspectSpill) || hasDefect(r, DefectTNEFCorrupt) {
		t.Fatalf("defects %q", r.Defects)
	}
	if len(r.Embedded) < 1 || r.Embedded[0].Name != "first.exe" || !r.Embedded[0].Result.Executable {
		t.Fatalf("embedded %+v", r.Embedded)
	}
}

// TestBoundedMemory: a 16 MB zip of 64 entries is inspected with a few
// hundred KiB of allocations: entries are sniffed, never read whole.
func TestBoundedMemory(t *testing.T) {
	var ents []zent
	chunk := randBytes(256 << 10)
	for i := 0; i < 64; i++ {
		ents = append(ents, zent{name: fmt.Sprintf("f%02d.bin", i), data: chunk, store: true})
	}
	body := buildZip(t, ents...)
	opts := Options{SpillDir: t.TempDir()}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := inspectChunks(opts, body, 32<<10)
	runtime.ReadMemStats(&after)
	if len(r.Archive) != 64 {
		t.Fatalf("%d entries", len(r.Archive))
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d-byte zip: %d bytes allocated", len(body), alloc)
	if alloc > 4<<20 {
		t.Fatalf("allocated %d bytes inspecting a %d-byte zip", alloc, len(body))
	}
}
