package inspect

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
)

// BenchmarkInspect feeds 1 MB bodies in 32 KiB writes, as the parser does.
// "sha256" is the raw hashing speed for comparison.
func BenchmarkInspect(b *testing.B) {
	const size = 1 << 20
	rnd := randBytes(size)
	pdf := append([]byte("%PDF-1.7\n"), rnd[:size-9]...)
	text := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog, again and again.\r\n"), size/64)
	var ents []zent
	for i := 0; i < 16; i++ {
		ents = append(ents, zent{name: fmt.Sprintf("f%02d.bin", i), data: rnd[i*size/16 : (i+1)*size/16], store: i%2 == 0})
	}
	zipBody := buildZip(b, ents...)
	dir := b.TempDir()
	for _, c := range []struct {
		name string
		body []byte
		opts Options
	}{
		{"random", rnd, Options{}},
		{"pdf", pdf, Options{}},
		{"text-uuscan", text, Options{Text: true}},
		{"zip", zipBody, Options{SpillDir: dir}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				inspectChunks(c.opts, c.body, 32<<10)
			}
		})
	}
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			h := sha256.New()
			for p := rnd; len(p) > 0; p = p[min(len(p), 32<<10):] {
				h.Write(p[:min(len(p), 32<<10)])
			}
			h.Sum(nil)
		}
	})
}
