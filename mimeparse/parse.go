package mimeparse

import (
	"errors"
	"io"
)

// Parse reads the raw message from r to its end in one pass and describes it.
// Malformed MIME never fails the parse: anomalies become defects. The error
// is only ever a read error from r (the Message is then still usable for
// what was read).
//
// PLACEHOLDER: the real parser is issue 3's work.
func Parse(r io.Reader, lim Limits) (*Message, error) {
	return nil, errors.New("mimeparse: not implemented yet")
}
