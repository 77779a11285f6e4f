package mimeparse

import (
	"errors"
	"fmt"
	"io"
)

// Edit replaces the raw message's bytes [Start, End) with Data; Start == End
// inserts Data before byte Start.
type Edit struct {
	Start, End int64
	Data       []byte
}

// ErrEditOrder is returned by Splice (wrapped) when edits are not sorted by
// Start, overlap, or have End < Start.
var ErrEditOrder = errors.New("mimeparse: edits unsorted or overlapping")

// ErrEditRange is returned by Splice (wrapped) when an edit reaches past the
// end of the source.
var ErrEditRange = errors.New("mimeparse: edit past the end of the message")

// CheckEdits reports whether edits are sorted by Start and do not overlap.
// Two insertions at the same offset are allowed (applied in order), and an
// insertion may sit at the Start or End of a replacement, but two
// replacements may not share a byte.
func CheckEdits(edits []Edit) error {
	var prevEnd int64
	for i, e := range edits {
		if e.Start < 0 || e.End < e.Start {
			return fmt.Errorf("%w: edit %d has range [%d,%d)", ErrEditOrder, i, e.Start, e.End)
		}
		if i > 0 && e.Start < prevEnd {
			return fmt.Errorf("%w: edit %d starts at %d before the previous edit's end %d", ErrEditOrder, i, e.Start, prevEnd)
		}
		prevEnd = e.End
	}
	return nil
}

// Splice streams src (the raw message, read sequentially once) to w with
// edits applied. Edits must be sorted by Start and must not overlap; every
// byte outside them is copied unchanged, so untouched headers and parts stay
// byte-identical (DKIM survives). It returns the bytes written. The edits
// are checked before anything is written.
func Splice(w io.Writer, src io.Reader, edits []Edit) (int64, error) {
	if err := CheckEdits(edits); err != nil {
		return 0, err
	}
	var (
		pos     int64 // bytes of src consumed
		written int64
	)
	for _, e := range edits {
		// Copy the untouched bytes before the edit.
		if e.Start > pos {
			n, err := io.CopyN(w, src, e.Start-pos)
			written += n
			pos += n
			if err != nil {
				if err == io.EOF {
					return written, fmt.Errorf("%w: edit at %d, message has %d bytes", ErrEditRange, e.Start, pos)
				}
				return written, err
			}
		}
		n, err := w.Write(e.Data)
		written += int64(n)
		if err != nil {
			return written, err
		}
		// Skip the replaced bytes.
		if e.End > pos {
			d, err := io.CopyN(io.Discard, src, e.End-pos)
			pos += d
			if err != nil {
				if err == io.EOF {
					return written, fmt.Errorf("%w: edit ends at %d, message has %d bytes", ErrEditRange, e.End, pos)
				}
				return written, err
			}
		}
	}
	n, err := io.Copy(w, src)
	written += n
	return written, err
}
