package proxy

import (
	"bytes"
	"errors"
	"io"
	"os"
)

// spool holds one message: in memory up to max bytes, then in a temp file.
// The temp file (mode 0600, random name) is unlinked as soon as it is
// created, so it disappears with the process whatever happens to the
// session — a crash included — and nothing can open it by name.
type spool struct {
	dir string
	max int64
	buf bytes.Buffer
	f   *os.File
	n   int64
	err error // first write error, sticky
}

var _ io.Writer = (*spool)(nil)

func newSpool(dir string, max int64) *spool { return &spool{dir: dir, max: max} }

func (s *spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil && int64(s.buf.Len())+int64(len(p)) > s.max {
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
