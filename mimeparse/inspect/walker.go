package inspect

import "io"

// readerAtSize is random access to a body or archive member of known size.
type readerAtSize interface {
	io.ReaderAt
	Size() int64
}

type sizedReaderAt struct {
	io.ReaderAt
	n int64
}

func (s sizedReaderAt) Size() int64 { return s.n }

// walker lists a container and the containers nested in it, sharing the
// budgets of one attachment: entries listed, bytes decompressed, spill.
type walker struct {
	opts      Options
	res       *Result
	nest      int
	truncated bool // the source was cut at the spill limit
	entries   int
	bytesLeft int64
}

func newWalker(o Options, r *Result, nest int) *walker {
	return &walker{opts: o, res: r, nest: nest, bytesLeft: o.Spill}
}

// container inspects src as format k; depth is 0 for the attachment itself.
func (w *walker) container(k kind, src readerAtSize, depth int) {
}
