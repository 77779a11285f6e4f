package proxy

import (
	"bytes"
	"io"
	"testing"
)

// TestSpoolBudget: spools share one process-wide memory budget; a spool
// that cannot reserve more goes to disk, and every byte reserved comes back
// when spools close, whatever path they took.
func TestSpoolBudget(t *testing.T) {
	dir := t.TempDir()
	b := newMemBudget(2 * spoolChunk)
	a := newSpool(dir, 1<<20, b)
	if _, err := a.Write(bytes.Repeat([]byte("a"), spoolChunk+1)); err != nil {
		t.Fatal(err)
	}
	if a.OnDisk() || b.left.Load() != 0 {
		t.Fatalf("first spool: on disk %v, budget left %d; want memory and 0", a.OnDisk(), b.left.Load())
	}
	c := newSpool(dir, 1<<20, b)
	payload := []byte("second message, no budget left\r\n")
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	if !c.OnDisk() {
		t.Fatal("second spool stayed in memory past the budget")
	}
	r, err := c.Reader()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); !bytes.Equal(got, payload) {
		t.Fatalf("spilled spool reads %q, want %q", got, payload)
	}
	// Growing past its own limit moves a to disk and returns its share.
	if _, err := a.Write(bytes.Repeat([]byte("a"), 1<<20)); err != nil {
		t.Fatal(err)
	}
	if !a.OnDisk() || b.left.Load() != 2*spoolChunk {
		t.Fatalf("after spill: on disk %v, budget left %d; want true and %d", a.OnDisk(), b.left.Load(), 2*spoolChunk)
	}
	d := newSpool(dir, 1<<20, b)
	d.Write([]byte("small"))
	if d.OnDisk() || b.left.Load() != spoolChunk {
		t.Fatalf("third spool: on disk %v, budget left %d", d.OnDisk(), b.left.Load())
	}
	for _, s := range []*spool{a, c, d} {
		s.Close()
	}
	if b.left.Load() != 2*spoolChunk {
		t.Fatalf("budget left %d after every spool closed, want %d", b.left.Load(), 2*spoolChunk)
	}
}
