package inspect

import (
	"bytes"
	"io"
	"path"
	"strings"

	"github.com/gabriel-vasile/mimetype"
)

// memNested is the largest nested container read into memory; larger ones
// are spilled to a temp file (within Options.Spill).
const memNested = 1 << 20

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
// budgets of one attachment: entries listed and bytes decompressed (both
// bounded, whatever the archive claims about itself). Decompressed bytes
// are also charged to the message's Budget.
type walker struct {
	opts      Options
	res       *Result
	nest      int
	truncated bool // the source was cut at the spill limit: read errors are expected
	entries   int
	bytesLeft int64 // decompressed bytes still allowed; starts at Options.Spill
	full      bool  // the entry limit was hit
	ooxml     bool  // the attachment is an OOXML package: its own parts (depth 1) are the document, not archive entries
}

// left is what may still be decompressed: the smaller of the attachment's
// and the message's budgets.
func (w *walker) left() int64 { return min(w.bytesLeft, w.opts.Budget.Left()) }

// charge counts n decompressed bytes against both budgets.
func (w *walker) charge(n int64) {
	w.bytesLeft -= n
	w.opts.Budget.left.Add(-n)
}

// spent reports whether a budget is used up, with the defect naming it.
func (w *walker) spent() bool {
	switch {
	case w.opts.Budget.Left() <= 0:
		w.res.addDefect(DefectLimitDecompressedBytes)
	case w.bytesLeft <= 0:
		w.res.addDefect(DefectLimitArchiveBytes)
	default:
		return false
	}
	return true
}

func newWalker(o Options, r *Result, nest int) *walker {
	return &walker{opts: o, res: r, nest: nest, bytesLeft: o.Spill}
}

// container inspects src as format k; depth is the depth of the container
// (0 for the attachment itself), its members get depth+1.
func (w *walker) container(k kind, src readerAtSize, depth int) {
	// The format libraries see hostile bytes; a panic in one of them must
	// not take the message (or the process) down. It is a corrupt archive.
	defer func() {
		if recover() != nil {
			w.res.addDefect(DefectArchiveCorrupt)
		}
	}()
	switch k {
	case kindZip:
		w.zip(src, depth)
	case kindOLE:
		w.ole(src)
	case kindGzip, kindBzip2, kindXz, kindZstd:
		w.compressed(k, io.NewSectionReader(src, 0, src.Size()), depth)
	case kindCab:
		w.cab(src, depth)
	case kindISO:
		w.iso(src, depth)
	case kindTar:
		w.tar(io.NewSectionReader(src, 0, src.Size()), depth)
	case kindRar:
		w.rar(io.NewSectionReader(src, 0, src.Size()), depth)
	case kind7z:
		w.sevenZip(src, depth)
	case kindTNEF:
		if depth == 0 {
			w.tnef(src)
		}
	}
}

// corrupt records a read failure unless the source was cut short on purpose.
func (w *walker) corrupt() {
	if !w.truncated {
		w.res.addDefect(DefectArchiveCorrupt)
	}
}

// add lists e; false when the entry limit is reached.
func (w *walker) add(e Entry) bool {
	if w.entries >= w.opts.ArchiveEntries {
		w.full = true
		w.res.addDefect(DefectLimitArchiveEntries)
		return false
	}
	w.entries++
	if e.Encrypted {
		w.res.Encrypted = true
	}
	w.res.Archive = append(w.res.Archive, e)
	return true
}

// limited wraps a decompressing reader so that it counts against the
// attachment's decompression budget.
func (w *walker) limited(r io.Reader) io.Reader { return &budgetReader{r: r, w: w} }

type budgetReader struct {
	r io.Reader
	w *walker
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.w.spent() {
		return 0, io.EOF
	}
	if left := b.w.left(); int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.r.Read(p)
	b.w.charge(int64(n))
	return n, err
}

// member sniffs an entry from r (its decompressed content, already
// budgeted), lists it, and opens it when it is itself a container.
// e.Depth must be set. ok is false when the entry limit is reached; err is
// a read error of the entry's first bytes (corrupt data, unsupported
// method, encryption), for the caller to classify.
func (w *walker) member(e *Entry, r io.Reader) (ok bool, err error) {
	head := make([]byte, headMax)
	n, err := io.ReadFull(r, head)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	head = head[:n]
	if n > 0 || e.Size == 0 {
		e.DetectedType, e.Executable = sniff(head)
	}
	k := sniffKind(head)
	docPart := w.ooxml && e.Depth == 1
	if k == kindNone {
		if c := sniffCarrier(head, &Options{Name: e.Name}); c != carrierNone {
			// The carrier is listed first, what it carries after it.
			if !w.add(*e) {
				return false, err
			}
			idx := len(w.res.Archive) - 1
			if e.Depth > w.opts.ArchiveDepth {
				w.res.addDefect(DefectLimitArchiveDepth)
				return !w.full, err
			}
			src, cleanup := w.readAll(head, r)
			if src != nil {
				if docPart {
					w.res.addActive(w.carrier(c, src, 0, false))
				} else {
					e.Active = w.carrier(c, src, e.Depth, true)
					w.res.Archive[idx].Active = e.Active
				}
			}
			if cleanup != nil {
				cleanup()
			}
			return !w.full, err
		}
	}
	if k == kindNone && maybeISO(head, &Options{Name: e.Name}) && (e.Size < 0 || e.Size > 32<<10) {
		k = kindISO
	}
	var nested readerAtSize
	var cleanup func()
	if k != kindNone && k != kindTNEF {
		if e.Depth >= w.opts.ArchiveDepth && k != kindOLE {
			w.res.addDefect(DefectLimitArchiveDepth)
		} else {
			nested, cleanup = w.readAll(head, r)
		}
	}
	if cleanup != nil {
		defer cleanup()
	}
	if k == kindOLE && nested != nil {
		// A document inside an archive: its macros count for the attachment,
		// an MSI inside is an executable entry.
		if f, err := readCFB(nested); err == nil {
			if f.macros {
				w.res.Macros = true
				e.Macros = true
			}
			e.Executable = e.Executable || f.msi
			e.Encrypted = e.Encrypted || f.encrypted
			if f.ole10 != nil {
				if docPart {
					w.res.addActive([]string{ActiveOLEPackage})
				} else {
					e.Active = []string{ActiveOLEPackage}
				}
				// the packaged file is listed after the object that holds it
				defer w.olePackage(f, e.Depth, !docPart)
			}
		} else {
			w.res.addDefect(DefectOLECorrupt)
		}
		nested = nil
	}
	if !w.add(*e) {
		return false, err
	}
	if nested != nil {
		// macros found inside (a .docm in a zip, a zip in a zip holding
		// one) belong to this entry as well as to the attachment
		at, had := len(w.res.Archive)-1, w.res.Macros
		w.res.Macros = false
		w.container(k, nested, e.Depth)
		if w.res.Macros {
			w.res.Archive[at].Macros = true
		}
		w.res.Macros = w.res.Macros || had
	}
	return !w.full, err
}

// readAll reads a nested container whole: in memory when small, else into
// a temp file, both within the decompression budget.
func (w *walker) readAll(head []byte, r io.Reader) (readerAtSize, func()) {
	buf := bytes.NewBuffer(append([]byte(nil), head...))
	if _, err := io.CopyN(buf, r, memNested-int64(len(head))+1); err != nil {
		if w.spent() {
			// Cut at the budget: the nested container is not opened.
			return nil, nil
		}
		if err != io.EOF {
			w.corrupt()
		}
		return bytes.NewReader(buf.Bytes()), nil
	}
	f, err := createUnlinked(w.opts.SpillDir)
	if err != nil {
		w.res.addDefect(DefectSpillFailed)
		return nil, nil
	}
	cleanup := func() { f.Close() }
	n, err := io.Copy(f, io.MultiReader(buf, r))
	if err != nil {
		w.corrupt()
	}
	if w.spent() {
		cleanup()
		return nil, nil
	}
	return sizedReaderAt{f, n}, cleanup
}

// sniff names the type of the first bytes of a body and says whether they
// are a native executable or an MSI package.
func sniff(head []byte) (string, bool) {
	mt := mimetype.Detect(head)
	return baseType(mt.String()), isExecutable(head) || mt.Is("application/x-ms-installer")
}

// extOf returns the last extension of a file name, lower case, without the
// dot; trailing dots and spaces (which Windows drops) are trimmed first.
func extOf(name string) string {
	name = strings.TrimRight(name, ". ")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	e := path.Ext(name)
	if len(e) <= 1 {
		return ""
	}
	return strings.ToLower(e[1:])
}
