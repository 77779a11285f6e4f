package proxy

import (
	"errors"
	"io"
)

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
