// Package spool holds one message while mailgate decides on it: in memory
// up to a per-message size and a process-wide budget, then in an unlinked
// 0600 file (docs/DESIGN.md "Data flow of one message"). Every front-end
// (proxy, milter) spools through it.
package spool

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// Budget is the process-wide allowance for messages held in memory
// (limits.spool_memory_total). A spool that cannot reserve what it needs
// goes to disk at once, so a thousand slow clients cost a thousand small
// buffers, not a thousand spool_memory buffers (DESIGN invariant 3).
type Budget struct{ left atomic.Int64 }

func NewBudget(n int64) *Budget {
	b := &Budget{}
	b.left.Store(n)
	return b
}

// reserve takes n bytes from the budget, or nothing and false.
func (b *Budget) reserve(n int64) bool {
	if b == nil {
		return true
	}
	for {
		left := b.left.Load()
		if left < n {
			return false
		}
		if b.left.CompareAndSwap(left, left-n) {
			return true
		}
	}
}

func (b *Budget) release(n int64) {
	if b != nil && n > 0 {
		b.left.Add(n)
	}
}

// ChunkSize is the step in which a spool reserves memory from the budget,
// and the size of the pooled buffers that hold a message in memory.
const ChunkSize = 64 << 10

// chunkPool recycles ChunkSize-sized buffers between messages: a message
// in memory is a list of them, so holding it costs no growth copies and no
// per-message allocation once the pool is warm.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

func GetChunk() *[]byte  { return chunkPool.Get().(*[]byte) }
func PutChunk(b *[]byte) { chunkPool.Put(b) }

// spool holds one message: its first bytes in memory, up to max bytes and
// what the budget allows, the rest in a temp file. The temp file (mode
// 0600, random name) is unlinked as soon as it is created, so it
// disappears with the process whatever happens to the session — a crash
// included — and nothing can open it by name.
type Spool struct {
	dir      string
	max      int64
	budget   *Budget   // nil: no process-wide bound
	reserved int64     // bytes taken from budget for chunks
	chunks   []*[]byte // the message's first mem bytes: full chunks, then the last
	mem      int64     // bytes in chunks; past it, the rest is in f
	f        *os.File
	wb       *[]byte // on disk: a write buffer, reserved from the budget; nil when the budget had none
	wn       int     // bytes in wb not yet written to f
	n        int64
	err      error // first write error, sticky

	// A goroutine that may outlive the session's use (an abandoned parse,
	// bounded.go) shares the spool: the last of the two closes it.
	mu          sync.Mutex
	shared      bool
	closeWanted bool
}

var _ io.Writer = (*Spool)(nil)

func New(dir string, max int64, budget *Budget) *Spool {
	return &Spool{dir: dir, max: max, budget: budget}
}

// fits reports whether n more bytes may stay in memory, reserving them
// from the budget in ChunkSize steps.
func (s *Spool) fits(n int64) bool {
	need := s.n + n
	if need > s.max {
		return false
	}
	if need <= s.reserved {
		return true
	}
	step := (need - s.reserved + ChunkSize - 1) / ChunkSize * ChunkSize
	if !s.budget.reserve(step) {
		return false
	}
	s.reserved += step
	return true
}

func (s *Spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil && !s.fits(int64(len(p))) {
		// What still fits stays in memory; the rest goes to the file.
		room := s.roomLeft(int64(len(p)))
		s.writeMem(p[:room])
		if err := s.spill(); err != nil {
			s.err = err
			return int(room), err
		}
		n, err := s.writeFile(p[room:])
		return int(room) + n, err
	}
	if s.f != nil {
		return s.writeFile(p)
	}
	s.writeMem(p)
	return len(p), nil
}

// roomLeft is how many of n more bytes may still stay in memory, up to
// max and within what the budget gives.
func (s *Spool) roomLeft(n int64) int64 {
	k := min(n, s.max-s.n)
	if k <= 0 {
		return 0
	}
	if s.fits(k) {
		return k
	}
	return min(max(s.reserved-s.n, 0), k)
}

// writeMem appends p to the chunks; the caller made room for it (fits).
func (s *Spool) writeMem(p []byte) {
	for len(p) > 0 {
		off := int(s.n % ChunkSize)
		if off == 0 && int64(len(s.chunks))*ChunkSize == s.n {
			s.chunks = append(s.chunks, GetChunk())
		}
		c := copy((*s.chunks[len(s.chunks)-1])[off:], p)
		p = p[c:]
		s.n += int64(c)
	}
	s.mem = s.n
}

// writeFile writes p to the temp file through the write buffer, so the
// small pieces DATA arrives in cost one write syscall per 64 KiB.
func (s *Spool) writeFile(p []byte) (int, error) {
	if s.wb != nil && s.wn+len(p) <= ChunkSize {
		s.wn += copy((*s.wb)[s.wn:], p)
		s.n += int64(len(p))
		return len(p), nil
	}
	if err := s.flush(); err != nil {
		return 0, err
	}
	if s.wb != nil && len(p) < ChunkSize {
		return s.writeFile(p)
	}
	n, err := s.f.Write(p)
	s.n += int64(n)
	if err != nil {
		s.err = err
	}
	return n, err
}

// flush writes the write buffer out.
func (s *Spool) flush() error {
	if s.wn == 0 {
		return nil
	}
	_, err := s.f.Write((*s.wb)[:s.wn])
	s.wn = 0
	if err != nil {
		s.err = err
	}
	return err
}

// dropWriteBuffer flushes the write buffer and returns it, and its share of
// the budget.
func (s *Spool) dropWriteBuffer() error {
	if s.wb == nil {
		return nil
	}
	err := s.flush()
	PutChunk(s.wb)
	s.wb = nil
	s.budget.release(ChunkSize)
	return err
}

// spill opens the unlinked temp file for the rest of the message. The
// bytes in memory stay there: a message just past max costs a file write
// of its last bytes, not of all of them and a read back (BENCHMARKS.md,
// "Runs 8–11"). The write buffer is one more chunk if the budget has it.
func (s *Spool) spill() error {
	f, err := os.CreateTemp(s.dir, "mailgate-spool-*")
	if err != nil {
		return err
	}
	// Unlinked at once: the open descriptor keeps the data.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return err
	}
	s.f = f
	if s.budget.reserve(ChunkSize) {
		s.wb = GetChunk()
	}
	return nil
}

func (s *Spool) freeChunks() {
	for i, c := range s.chunks {
		PutChunk(c)
		s.chunks[i] = nil
	}
	s.chunks = nil
	s.budget.release(s.reserved)
	s.reserved = 0
}

// Size is the number of bytes spooled.
// Err is the first write error, sticky: checked once at the end of data.
func (s *Spool) Err() error { return s.err }

func (s *Spool) Size() int64 { return s.n }

// Reader returns a reader over the whole message, from its start. Once it
// was called, the spool is not written to any more. Readers are used one
// after the other, not side by side.
func (s *Spool) Reader() (io.Reader, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.f == nil {
		return s.memReader(), nil
	}
	if err := s.dropWriteBuffer(); err != nil {
		return nil, err
	}
	file := io.NewSectionReader(s.f, 0, s.n-s.mem)
	if s.mem == 0 {
		return file, nil
	}
	return io.MultiReader(s.memReader(), file), nil
}

func (s *Spool) memReader() *chunkReader {
	return &chunkReader{chunks: s.chunks, left: s.mem}
}

// OnDisk reports whether the message went past the memory threshold.
func (s *Spool) OnDisk() bool { return s.f != nil }

// share lets a goroutine read the spool beyond the session's Close; the
// spool is released once both the session and that goroutine (calling
// release) are done with it.
func (s *Spool) Share() (release func()) {
	s.mu.Lock()
	s.shared = true
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.shared = false
		want := s.closeWanted
		s.mu.Unlock()
		if want {
			s.close()
		}
	}
}

// Close releases the spool, or leaves that to the goroutine sharing it.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.shared {
		s.closeWanted = true
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	return s.close()
}

func (s *Spool) close() error {
	if s.wb != nil {
		PutChunk(s.wb)
		s.wb, s.wn = nil, 0
		s.budget.release(ChunkSize)
	}
	s.freeChunks()
	if s.err == nil {
		s.err = errors.New("proxy: spool closed")
	}
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// chunkReader reads a message held in spool chunks. It is valid until the
// spool is closed.
type chunkReader struct {
	chunks []*[]byte
	off    int   // in chunks[0]
	left   int64 // bytes not yet read
}

var (
	_ io.Reader   = (*chunkReader)(nil)
	_ io.WriterTo = (*chunkReader)(nil)
)

// next is the unread part of the current chunk.
func (r *chunkReader) next() []byte {
	for len(r.chunks) > 0 && r.off == ChunkSize {
		r.chunks, r.off = r.chunks[1:], 0
	}
	if r.left == 0 || len(r.chunks) == 0 {
		return nil
	}
	b := (*r.chunks[0])[r.off:]
	if int64(len(b)) > r.left {
		b = b[:r.left]
	}
	return b
}

func (r *chunkReader) Read(p []byte) (int, error) {
	b := r.next()
	if len(b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b)
	r.off += n
	r.left -= int64(n)
	return n, nil
}

// WriteTo writes the rest in whole chunks: one Write per 64 KiB.
func (r *chunkReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		b := r.next()
		if len(b) == 0 {
			return total, nil
		}
		n, err := w.Write(b)
		r.off += n
		r.left -= int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}
