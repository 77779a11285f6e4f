package spool

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
	b := NewBudget(2 * ChunkSize)
	a := New(dir, 1<<20, b)
	if _, err := a.Write(bytes.Repeat([]byte("a"), ChunkSize+1)); err != nil {
		t.Fatal(err)
	}
	if a.OnDisk() || b.left.Load() != 0 {
		t.Fatalf("first spool: on disk %v, budget left %d; want memory and 0", a.OnDisk(), b.left.Load())
	}
	c := New(dir, 1<<20, b)
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
	// Growing past its own limit sends the rest of a to disk: what a holds
	// in memory stays there (its reservation too, so the budget is still
	// spent), and it gets no write buffer, the budget having none.
	if _, err := a.Write(bytes.Repeat([]byte("a"), 1<<20)); err != nil {
		t.Fatal(err)
	}
	if !a.OnDisk() || b.left.Load() != 0 || a.mem != 2*ChunkSize || a.wb != nil {
		t.Fatalf("after spill: on disk %v, budget left %d, %d bytes in memory, write buffer %v; want true, 0, %d, none",
			a.OnDisk(), b.left.Load(), a.mem, a.wb != nil, 2*ChunkSize)
	}
	ra, err := a.Reader()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(ra); len(got) != ChunkSize+1+1<<20 || bytes.Count(got, []byte("a")) != len(got) {
		t.Fatalf("spilled a reads %d bytes, want %d", len(got), ChunkSize+1+1<<20)
	}
	d := New(dir, 1<<20, b)
	d.Write([]byte("small"))
	if !d.OnDisk() {
		t.Fatal("third spool stayed in memory with the budget spent")
	}
	a.Close()
	e := New(dir, 1<<20, b)
	e.Write([]byte("small"))
	if e.OnDisk() || b.left.Load() != ChunkSize {
		t.Fatalf("a spool after a closed: on disk %v, budget left %d; want memory and %d", e.OnDisk(), b.left.Load(), ChunkSize)
	}
	for _, s := range []*Spool{c, d, e} {
		s.Close()
	}
	if b.left.Load() != 2*ChunkSize {
		t.Fatalf("budget left %d after every spool closed, want %d", b.left.Load(), 2*ChunkSize)
	}
}

// TestSpoolChunks: a message held in several pooled chunks, or spilled to
// disk part way, reads back byte for byte, by Read and by WriteTo, whatever
// the sizes of the writes that built it.
func TestSpoolChunks(t *testing.T) {
	msg := make([]byte, 3*ChunkSize+1234)
	for i := range msg {
		msg[i] = byte(i*7 + i/251)
	}
	for _, tc := range []struct {
		name   string
		max    int64
		step   int
		onDisk bool
	}{
		{"memory, 1000-byte writes", 1 << 20, 1000, false},
		{"memory, one write", 1 << 20, len(msg), false},
		{"memory, chunk-sized writes", 1 << 20, ChunkSize, false},
		{"spilled after two chunks", 2*ChunkSize + 10, 4096, true},
		{"spilled, writes over a chunk", 2*ChunkSize + 10, ChunkSize + 999, true},
		{"spilled at once", 0, 777, true},
		{"spilled 10 bytes past max", int64(3*ChunkSize + 1224), ChunkSize, true},
		{"spilled, max not a chunk multiple", ChunkSize + 100, 3000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBudget(64 << 20)
			sp := New(t.TempDir(), tc.max, b)
			defer sp.Close()
			for p := msg; len(p) > 0; {
				n := min(tc.step, len(p))
				if w, err := sp.Write(p[:n]); err != nil || w != n {
					t.Fatalf("Write = %d, %v", w, err)
				}
				p = p[n:]
			}
			if sp.OnDisk() != tc.onDisk || sp.Size() != int64(len(msg)) {
				t.Fatalf("on disk %v size %d, want %v %d", sp.OnDisk(), sp.Size(), tc.onDisk, len(msg))
			}
			if sp.mem > tc.max || tc.onDisk && sp.mem != tc.max {
				t.Fatalf("%d bytes in memory, max %d: want max when spilled, never more", sp.mem, tc.max)
			}
			r, err := sp.Reader()
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := io.Copy(&got, r); err != nil || !bytes.Equal(got.Bytes(), msg) {
				t.Fatalf("WriteTo read back %d bytes (err %v), differ from the %d written", got.Len(), err, len(msg))
			}
			r, _ = sp.Reader()
			small, err := io.ReadAll(io.LimitReader(r, int64(len(msg))+1))
			if err != nil || !bytes.Equal(small, msg) {
				t.Fatalf("Read read back %d bytes (err %v)", len(small), err)
			}
			sp.Close()
			if b.left.Load() != 64<<20 {
				t.Fatalf("budget left %d after Close", b.left.Load())
			}
			if _, err := sp.Reader(); err == nil {
				t.Fatal("Reader after Close: want an error, the chunks are recycled")
			}
		})
	}
}
