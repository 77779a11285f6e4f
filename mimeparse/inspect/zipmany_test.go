package inspect

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// writeManyZip writes a zip of n empty stored entries (4-character names)
// to path, streaming: local headers, then the central directory, then the
// ZIP64 end records (n is past 65535).
func writeManyZip(t *testing.T, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	le := binary.LittleEndian
	name := func(i int) []byte { return []byte(fmt.Sprintf("%04s", strconv.FormatInt(int64(i), 36))) }
	var off int64
	for i := 0; i < n; i++ {
		h := make([]byte, 30)
		copy(h, "PK\x03\x04")
		h[4] = 10
		le.PutUint16(h[26:], 4)
		w.Write(h)
		w.Write(name(i))
		off += 34
	}
	cdStart := off
	for i := 0; i < n; i++ {
		h := make([]byte, 46)
		copy(h, "PK\x01\x02")
		h[4], h[6] = 10, 10
		le.PutUint16(h[28:], 4)
		le.PutUint32(h[42:], uint32(i*34))
		w.Write(h)
		w.Write(name(i))
		off += 50
	}
	z := []byte("PK\x06\x06")
	z = le.AppendUint64(z, 44)
	z = append(z, 45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	z = le.AppendUint64(z, uint64(n))
	z = le.AppendUint64(z, uint64(n))
	z = le.AppendUint64(z, uint64(off-cdStart))
	z = le.AppendUint64(z, uint64(cdStart))
	z = append(z, "PK\x06\x07\x00\x00\x00\x00"...)
	z = le.AppendUint64(z, uint64(off))
	z = append(z, 1, 0, 0, 0)
	z = append(z, "PK\x05\x06\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00"...)
	w.Write(z)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestZipManyEntries: a zip of 700,000 entries is listed up to
// ArchiveEntries with limit-archive-entries, and archive/zip is never
// handed the whole directory: the inspection, run in a child process on a
// generated 59 MB file, stays under 64 MiB of peak RSS (archive/zip
// reading the whole directory costs about 260 MB).
func TestZipManyEntries(t *testing.T) {
	if p := os.Getenv("MAILGATE_TEST_ZIPMANY"); p != "" {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		i := New(Options{SpillDir: filepath.Dir(p)})
		io.Copy(i, f)
		r := i.Close()
		fmt.Printf("ENTRIES %d DEFECTS %s\n", len(r.Archive), strings.Join(r.Defects, ","))
		return
	}
	if testing.Short() {
		t.Skip("writes a 59 MB file")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "many.zip")
	writeManyZip(t, p, 700000)
	st, _ := os.Stat(p)
	// The child is started by a clone that shares this process's memory
	// until exec, and Linux counts what is resident then in the child's
	// peak: give back what earlier tests left behind first.
	debug.FreeOSMemory()
	cmd := exec.Command(os.Args[0], "-test.run=^TestZipManyEntries$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MAILGATE_TEST_ZIPMANY="+p)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	t.Logf("%d-byte zip of 700000 entries: peak RSS %d MiB, %v CPU; %s", st.Size(), rss>>20, cpu, strings.TrimSpace(string(out)))
	if !strings.Contains(string(out), fmt.Sprintf("ENTRIES %d DEFECTS ", DefaultArchiveEntries)) ||
		!strings.Contains(string(out), DefectLimitArchiveEntries) {
		t.Errorf("child output %s", out)
	}
	if rss > 64<<20 {
		t.Errorf("peak RSS %d bytes", rss)
	}
}
