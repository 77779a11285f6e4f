package inspect

import (
	"bytes"
	"testing"

	"mailgate/internal/hostile"
)

// TestBudgetShared: one Budget bounds the decompression of every Inspector
// sharing it and of the uuencode blocks inside them; without it each
// bzip2 bomb (64 MiB of zeros) would cost its own 64 MiB.
func TestBudgetShared(t *testing.T) {
	bomb := hostile.Bzip2Bomb()
	b := NewBudget(16 << 20)
	for i := 0; i < 3; i++ {
		r := inspectBytes(t, Options{SpillDir: t.TempDir(), Budget: b}, bomb)
		if !hasDefect(r, DefectLimitDecompressedBytes) || b.Left() != 0 {
			t.Fatalf("bomb %d: left %d, defects %q", i, b.Left(), r.Defects)
		}
	}
	// uuencode blocks in one text body share their parent's budget.
	var text bytes.Buffer
	for i := 0; i < 3; i++ {
		text.Write(uuencode("z.bz2", bomb))
	}
	b = NewBudget(16 << 20)
	r := inspectBytes(t, Options{SpillDir: t.TempDir(), Budget: b, Text: true}, text.Bytes())
	if len(r.Embedded) != 3 || b.Left() > 0 {
		t.Fatalf("%d embedded, left %d", len(r.Embedded), b.Left())
	}
	for _, e := range r.Embedded {
		if !hasDefect(e.Result, DefectLimitDecompressedBytes) {
			t.Fatalf("block %q: %q", e.Name, e.Result.Defects)
		}
	}
}
