package proxy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync/atomic"
)

// memBudget is the process-wide allowance for messages held in memory
// (limits.spool_memory_total). A spool that cannot reserve what it needs
// goes to disk at once, so a thousand slow clients cost a thousand small
// buffers, not a thousand spool_memory buffers (DESIGN invariant 3).
type memBudget struct{ left atomic.Int64 }

func newMemBudget(n int64) *memBudget {
	b := &memBudget{}
	b.left.Store(n)
	return b
}

// reserve takes n bytes from the budget, or nothing and false.
func (b *memBudget) reserve(n int64) bool {
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

func (b *memBudget) release(n int64) {
	if b != nil && n > 0 {
		b.left.Add(n)
	}
}

// spoolChunk is the step in which a spool reserves memory from the budget.
const spoolChunk = 64 << 10

// spool holds one message: in memory up to max bytes, then in a temp file.
// The temp file (mode 0600, random name) is unlinked as soon as it is
// created, so it disappears with the process whatever happens to the
// session — a crash included — and nothing can open it by name.
type spool struct {
	dir      string
	max      int64
	budget   *memBudget // nil: no process-wide bound
	reserved int64      // bytes taken from budget
	buf      bytes.Buffer
	f        *os.File
	n        int64
	err      error // first write error, sticky
}

var _ io.Writer = (*spool)(nil)

func newSpool(dir string, max int64, budget *memBudget) *spool {
	return &spool{dir: dir, max: max, budget: budget}
}

// fits reports whether n more bytes may stay in memory, reserving them
// from the budget in spoolChunk steps.
func (s *spool) fits(n int64) bool {
	need := int64(s.buf.Len()) + n
	if need > s.max {
		return false
	}
	if need <= s.reserved {
		return true
	}
	step := (need - s.reserved + spoolChunk - 1) / spoolChunk * spoolChunk
	if !s.budget.reserve(step) {
		return false
	}
	s.reserved += step
	return true
}

func (s *spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil && !s.fits(int64(len(p))) {
		f, err := os.CreateTemp(s.dir, "mailgate-spool-*")
		if err != nil {
			s.err = err
			return 0, err
		}
		// Unlinked at once: the open descriptor keeps the data.
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			s.err = err
			return 0, err
		}
		s.f = f
		if _, err := f.Write(s.buf.Bytes()); err != nil {
			s.err = err
			return 0, err
		}
		s.buf = bytes.Buffer{}
		s.budget.release(s.reserved)
		s.reserved = 0
	}
	var n int
	var err error
	if s.f != nil {
		n, err = s.f.Write(p)
	} else {
		n, err = s.buf.Write(p)
	}
	s.n += int64(n)
	if err != nil {
		s.err = err
	}
	return n, err
}

// Size is the number of bytes spooled.
func (s *spool) Size() int64 { return s.n }

// Reader returns a reader over the whole message, from its start.
func (s *spool) Reader() (io.Reader, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.f == nil {
		return bytes.NewReader(s.buf.Bytes()), nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.LimitReader(s.f, s.n), nil
}

// OnDisk reports whether the message went past the memory threshold.
func (s *spool) OnDisk() bool { return s.f != nil }

// Close releases the spool.
func (s *spool) Close() error {
	s.buf = bytes.Buffer{}
	s.budget.release(s.reserved)
	s.reserved = 0
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if s.err == nil {
		s.err = errors.New("proxy: spool closed")
	}
	return err
}

// limitReader returns errTooBig once more than n bytes were read.
type limitReader struct {
	r        io.Reader
	n        int64
	read     int64
	exceeded bool
}

var errTooBig = errors.New("proxy: message size exceeds limit")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.exceeded {
		return 0, errTooBig
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.n > 0 && l.read > l.n {
		l.exceeded = true
		return 0, errTooBig
	}
	return n, err
}
