package mimeparse

import (
	"errors"
	"io"
)

// Edit replaces the raw message's bytes [Start, End) with Data; Start == End
// inserts Data before byte Start.
type Edit struct {
	Start, End int64
	Data       []byte
}

// Splice streams src (the raw message, read sequentially once) to w with
// edits applied. Edits must be sorted by Start and must not overlap; every
// byte outside them is copied unchanged, so untouched headers and parts stay
// byte-identical (DKIM survives).
//
// PLACEHOLDER: the real splicer is issue 4's work.
func Splice(w io.Writer, src io.Reader, edits []Edit) (int64, error) {
	return 0, errors.New("mimeparse: Splice not implemented yet")
}
