package e2e_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailgate/internal/e2e"
	"mailgate/internal/hostile"
)

// attachmentsMessage writes a message with one base64 attachment per body.
func attachmentsMessage(t *testing.T, name string, bodies [][]byte) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nTo: b@example.org\r\nSubject: " + name + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n--=_b\r\nContent-Type: text/plain\r\n\r\nhi\r\n")
	for i, body := range bodies {
		fmt.Fprintf(&b, "--=_b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"+
			"Content-Disposition: attachment; filename=\"f%d.bin\"\r\n\r\n%s\r\n", i, base64.StdEncoding.EncodeToString(body))
	}
	b.WriteString("--=_b--\r\n")
	p := filepath.Join(t.TempDir(), name+".eml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// parseUsage runs `mailgate parse --json FILE` and returns its output, peak
// RSS in bytes, wall time and CPU time (user + system).
func parseUsage(t *testing.T, file string) (string, int64, time.Duration, time.Duration) {
	t.Helper()
	cmd := exec.Command(e2e.Binary(t), "parse", "--json", file)
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("mailgate parse: %v\n%s", err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return string(out), ru.Maxrss * 1024, wall, cpu // Maxrss is in KiB on Linux
}

func repeat(b []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// TestParseLyingDictionaries: five 7z (LZMA2, PPMd) or xz attachments whose
// headers ask for 3 GiB of dictionary each (a message of a few KB) are
// refused from their headers: `mailgate parse` stays under 256 MiB peak RSS
// and 10 s, and reports limit-archive-dict.
func TestParseLyingDictionaries(t *testing.T) {
	pe := []byte("MZ" + strings.Repeat("\x00", 200))
	const gib = 1 << 30
	cases := map[string][]byte{
		"7z-lzma2": hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.LZMA2, Props: []byte{hostile.LZMA2Props(3 * gib)}}, hostile.LZMA2Raw(pe), uint64(len(pe))),
		"7z-ppmd":  hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.PPMd, Props: hostile.DictProps(6, 3*gib)}, make([]byte, 64), uint64(len(pe))),
		"xz":       hostile.Xz(pe, 3*gib),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			file := attachmentsMessage(t, name, repeat(body, 5))
			st, _ := os.Stat(file)
			out, rss, wall, cpu := parseUsage(t, file)
			t.Logf("%s: %d-byte message, peak RSS %d MiB, %v wall, %v CPU", name, st.Size(), rss>>20, wall.Round(time.Millisecond), cpu.Round(time.Millisecond))
			if !strings.Contains(out, `"limit-archive-dict"`) {
				t.Errorf("no limit-archive-dict defect:\n%s", out)
			}
			if rss > 256<<20 || wall > 10*time.Second {
				t.Errorf("peak RSS %d bytes, %v", rss, wall)
			}
		})
	}
}

// TestParseBzip2Bombs: 40 bzip2 streams of 64 MiB of zeros each (79 bytes
// apiece) share one decompression budget per message
// (limits.decompressed_bytes, 256 MiB by default): `mailgate parse` spends
// under 5 s of CPU and reports limit-decompressed-bytes.
func TestParseBzip2Bombs(t *testing.T) {
	file := attachmentsMessage(t, "bzip2-bombs", repeat(hostile.Bzip2Bomb(), 40))
	st, _ := os.Stat(file)
	out, rss, wall, cpu := parseUsage(t, file)
	t.Logf("40 bzip2 bombs: %d-byte message, peak RSS %d MiB, %v wall, %v CPU", st.Size(), rss>>20, wall.Round(time.Millisecond), cpu.Round(time.Millisecond))
	if !strings.Contains(out, `"limit-decompressed-bytes"`) {
		t.Errorf("no limit-decompressed-bytes defect:\n%.2000s", out)
	}
	if cpu > 5*time.Second {
		t.Errorf("%v of CPU", cpu)
	}
}
