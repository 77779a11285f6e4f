// Package inspect finds out what the decoded body of one MIME leaf really
// is: its size and SHA-256, its sniffed type, whether it is a native
// executable, and for archives and Office documents what they contain
// (entries, encryption, VBA macros). It also finds uuencoded blocks in text
// bodies and the attachments inside TNEF (winmail.dat).
//
// An Inspector is an io.Writer: the parser feeds it the decoded body once,
// in order, in chunks of any size, and calls Close for the Result. The hot
// path (a PDF, an image, text) costs hashing plus one type sniff of the
// first bytes. Only bodies whose first bytes announce a container (zip,
// OLE2, gzip, bzip2, xz, zstd, tar, rar, 7z, cab, TNEF) are spilled to a
// 0600 temp file, bounded by Options.Spill, and opened at Close.
//
// Nothing here fails on content: anomalies and limits become defects
// (defects.go) so that policies can fail closed.
package inspect

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gabriel-vasile/mimetype"
)

// Defaults used when an Options field is zero or negative.
const (
	DefaultArchiveDepth   = 3
	DefaultArchiveEntries = 1000
	DefaultSpill          = 64 << 20
	// DefaultDecompressedBytes is the budget of a Budget-less Inspector.
	DefaultDecompressedBytes = 256 << 20
	// DefaultArchiveDict is the largest dictionary or model a decoder may
	// allocate (LZMA, LZMA2, PPMd, xz, zstd, rar windows).
	DefaultArchiveDict = 64 << 20
)

// headMax is how many leading bytes are kept for sniffing: mimetype's
// default read limit.
const headMax = 3072

// Options configure one Inspector. Zero values take the defaults above.
//
// Spill bounds three things, each per attachment: the decoded bytes written
// to the temp file (limit-inspect-spill), the bytes decompressed from its
// archive members to sniff them and open nested archives
// (limit-archive-bytes), and, for TNEF and uuencode, each embedded file's
// own spill.
//
// Budget bounds the bytes decompressed by every Inspector sharing it (one
// message: limit-decompressed-bytes); ArchiveDict bounds the memory one
// decoder may allocate, read from the archive's own headers before the
// decoder is opened (limit-archive-dict).
type Options struct {
	ArchiveDepth, ArchiveEntries int
	Spill                        int64   // max decoded bytes spilled to a temp file for random-access formats (zip, OLE)
	SpillDir                     string  // "" = os.TempDir()
	ArchiveDict                  int64   // largest dictionary, window or model a decoder may allocate
	Budget                       *Budget // nil: a budget of DefaultDecompressedBytes for this Inspector alone
	Text                         bool    // the body is text/*: scan for uuencode blocks
	Name                         string  // declared filename (hint only, e.g. winmail.dat)
	Declared                     string  // declared content type, lower case (hint only)
	// NoHash leaves Result.SHA256 empty: serve sets it when no rule reads
	// SHA256 (rules.Set.TrimLimits). Hashing was 0.71 ms of the milter's
	// 5.9 ms per 1 MB message (BENCHMARKS.md, "Runs 8–11").
	NoHash bool
}

func (o Options) withDefaults() Options {
	if o.ArchiveDepth <= 0 {
		o.ArchiveDepth = DefaultArchiveDepth
	}
	if o.ArchiveEntries <= 0 {
		o.ArchiveEntries = DefaultArchiveEntries
	}
	if o.Spill <= 0 {
		o.Spill = DefaultSpill
	}
	if o.ArchiveDict <= 0 {
		o.ArchiveDict = DefaultArchiveDict
	}
	if o.Budget == nil {
		o.Budget = NewBudget(DefaultDecompressedBytes)
	}
	return o
}

// Budget is the number of bytes the decoders of one message may still
// produce, shared by all of its Inspectors (and by the Inspectors of the
// uuencode blocks and TNEF files inside them): it is a count of work, not
// of time, so the same message always gets the same answer.
type Budget struct{ left atomic.Int64 }

// NewBudget returns a budget of n bytes (n <= 0: DefaultDecompressedBytes).
func NewBudget(n int64) *Budget {
	if n <= 0 {
		n = DefaultDecompressedBytes
	}
	b := &Budget{}
	b.left.Store(n)
	return b
}

// Left is what remains of the budget.
func (b *Budget) Left() int64 { return b.left.Load() }

// Entry is one member of an archive, listed recursively. Depth is 1 for a
// member of the attachment itself, 2 inside a nested archive, and so on.
// mimeparse.ArchiveEntry is this type: policies read these fields by name
// (docs/policy.md, "An ArchiveEntry"), so they are renamed only with it.
type Entry struct {
	Name, Ext    string
	Size         int64
	DetectedType string
	Executable   bool
	Encrypted    bool
	// Macros: the entry is an Office document with VBA or Excel 4.0 macro
	// sheets (OOXML or OLE2), or an archive holding one. The attachment's
	// Result.Macros is set too.
	Macros bool
	Depth  int
	Active []string // the entry is a carrier (HTML, PDF, ...): what it would do when opened (see carrier.go)
}

// Result describes one decoded body.
type Result struct {
	Size         int64
	SHA256       string // hex
	DetectedType string // mimetype's vocabulary, without parameters
	Executable   bool   // PE/DOS, ELF, Mach-O or MSI content
	Encrypted    bool   // an encrypted archive (or entry), or an encrypted Office document
	Macros       bool   // Office VBA or Excel 4.0 macro sheets, here or in a nested document
	Archive      []Entry
	Active       []string   // active content (carrier.go's vocabulary), sorted, each once
	Defects      []string   // see defects.go; each at most once
	Embedded     []Embedded // uuencode blocks found in text (Kind 'u'), TNEF attachments (Kind 't'), files inside carriers (Kind 'e')
}

// Embedded is a file found inside a body: a uuencode block in text
// (Kind 'u'), an attachment of a TNEF stream (Kind 't') or a file carried
// by a document, page, calendar or disk image (Kind 'e', see carrier.go).
type Embedded struct {
	Kind   byte
	Name   string
	Result Result
}

// Inspector is an io.Writer fed the decoded body of one leaf, in order, once.
type Inspector struct {
	opts    Options
	h       hash.Hash
	size    int64
	head    []byte
	decided bool
	kind    kind
	spill   *spillFile
	carrier carrier
	cspill  *memSpill    // a carrier's body
	pdfs    *pdfStreamer // a PDF's body, read as it is written
	uu      *uuScanner
	res     Result
	closed  bool
	nest    int      // TNEF/uuencode nesting of this inspector
	tail    [22]byte // the last bytes: a zip end-of-central-directory record?
	bufs    *buffers // pooled head, digest and uuencode scanner; nil after Close
}

// New returns an Inspector for one body.
func New(opts Options) *Inspector {
	return newNested(opts, 0)
}

func newNested(opts Options, nest int) *Inspector {
	b := bufPool.Get().(*buffers)
	i := &Inspector{opts: opts.withDefaults(), head: b.head[:0], bufs: b, nest: nest}
	if !opts.NoHash {
		b.h.Reset()
		i.h = b.h
	}
	if i.opts.Text {
		i.uu = &b.uu
		*i.uu = uuScanner{parent: i, line: b.uu.line[:0], dec: b.uu.dec[:0]}
	}
	return i
}

// buffers are what an Inspector needs for every body, whatever its size:
// the head kept for sniffing, the SHA-256 state and the uuencode scanner.
// They go back to bufPool when Close is done with them, so that a small
// message does not pay for allocating and clearing them per leaf.
type buffers struct {
	head []byte
	h    hash.Hash
	uu   uuScanner
}

var bufPool = sync.Pool{New: func() any {
	return &buffers{
		head: make([]byte, 0, headMax),
		h:    sha256.New(),
		uu:   uuScanner{line: make([]byte, 0, 128), dec: make([]byte, 0, 64)},
	}
}}

// release hands the buffers back; the Inspector keeps only its Result.
func (i *Inspector) release() {
	b := i.bufs
	if b == nil {
		return
	}
	// head never grows past its capacity, so b.head is still its array.
	i.bufs, i.h, i.head = nil, nil, nil
	if i.uu != nil {
		b.uu = uuScanner{line: i.uu.line[:0], dec: i.uu.dec[:0]}
		i.uu = nil
	}
	bufPool.Put(b)
}

// Write consumes p. It never fails on content.
func (i *Inspector) Write(p []byte) (int, error) {
	if i.closed {
		return len(p), nil
	}
	if i.h != nil {
		i.h.Write(p)
	}
	i.size += int64(len(p))
	if len(p) >= len(i.tail) {
		copy(i.tail[:], p[len(p)-len(i.tail):])
	} else {
		copy(i.tail[:], i.tail[len(p):])
		copy(i.tail[len(i.tail)-len(p):], p)
	}
	rest := p
	if !i.decided {
		n := min(len(p), headMax-len(i.head))
		i.head = append(i.head, p[:n]...)
		rest = p[n:]
		if len(i.head) == headMax {
			i.decide(false)
		}
		if i.spill != nil && len(rest) > 0 {
			i.spill.write(rest)
		}
		if i.cspill != nil && len(rest) > 0 {
			i.cspill.write(rest)
		}
		if i.pdfs != nil && len(rest) > 0 {
			i.pdfs.write(rest)
		}
	} else if i.spill != nil {
		i.spill.write(p)
	} else if i.cspill != nil {
		i.cspill.write(p)
	} else if i.pdfs != nil {
		i.pdfs.write(p)
	}
	if i.uu != nil {
		i.uu.write(p)
	}
	return len(p), nil
}

// decide looks at the first bytes and, for containers, starts spilling.
// final is true when the whole body is in head.
func (i *Inspector) decide(final bool) {
	i.decided = true
	i.kind = sniffKind(i.head)
	if i.kind == kindNone {
		i.carrier = sniffCarrier(i.head, &i.opts)
	}
	if i.kind == kindNone && i.carrier == carrierNone && !final && maybeISO(i.head, &i.opts) {
		i.kind = kindISO
	}
	if i.carrier == carrierPDF && !final {
		i.pdfs = newPDFStreamer(&i.opts)
		i.pdfs.write(i.head)
		return
	}
	if i.carrier != carrierNone && !final {
		i.cspill = &memSpill{max: i.opts.Spill, dir: i.opts.SpillDir}
		i.cspill.write(i.head)
		return
	}
	if i.kind == kindNone || final {
		return
	}
	i.spill = newSpill(i.opts.SpillDir, i.opts.Spill)
	i.spill.write(i.head)
}

// textSniffLen bounds the prefix of a plain text part that mimetype reads
// first (sniffType). Its text checks (JSON and CSV parsing, the
// binary-byte scan, the search for an MP3 frame) cost in proportion to the
// bytes read, and plain text parts are most of mail.
const textSniffLen = 512

// sniffType is mimetype's type for head, without parameters. It gives
// what mimetype.Detect(head) gives; for a part declared text/* whose head
// passes textPrefix, it first asks about the head's first textSniffLen
// bytes, and the answer textPrefix expects ("text/plain", "text/html") is
// the answer. Any other answer is asked again of the whole head.
// FuzzSniffType holds the two ways to the same answer, and
// mimeparse/testdata/sniff-corpus.golden the answers for every part of
// the corpus.
func sniffType(head []byte, declared string) string {
	if short, expect := textPrefix(head, declared); expect != "" {
		if mt := baseType(mimetype.Detect(short).String()); mt == expect {
			return mt
		}
	}
	return baseType(mimetype.Detect(head).String())
}

// textPrefix returns the prefix of head that decides mimetype's answer
// when it is the returned type there ("" when there is no such prefix).
// Every check of mimetype that looks past the first line of a text or
// page is ruled out here first, on the whole head:
//   - a binary data byte (the WHATWG list, mimetype's test for text) or an
//     0xFF (an MP3 frame is searched for anywhere): binary formats have
//     signatures anywhere;
//   - "%PDF-" within 1,024 bytes (mimetype looks for it there);
//   - "{", "[" first (JSON: parsed as a whole), or "<" other than a page
//     that opens with "<!DOCTYPE html" or "<html" (SVG and XML are
//     searched past comments and declarations; such a page is neither);
//   - for a text, a first line that may start CSV or TSV (",", tab, '"'),
//     a mail header (":", and the few other hints mimetype takes from
//     libmagic), NDJSON, SRT or GEDCOM (a digit, "-", "#", true, false,
//     null), or that does not end within textSniffLen bytes. The prefix is
//     then whole lines, which read the same with fewer lines after them.
func textPrefix(head []byte, declared string) ([]byte, string) {
	if len(head) <= textSniffLen || !strings.HasPrefix(declared, "text/") {
		return nil, ""
	}
	if hasNotPlainByte(head) {
		return nil, ""
	}
	if bytes.Contains(head[:min(len(head), 1024)], []byte("%PDF-")) {
		return nil, ""
	}
	t := bytes.TrimLeft(head, "\xef\xbb\xbf \t\r\n")
	if len(t) == 0 || t[0] == '{' || t[0] == '[' {
		return nil, ""
	}
	if t[0] == '<' {
		if hasPrefixFold(t, "<!doctype html") || hasPrefixFold(t, "<html") {
			return head[:textSniffLen], "text/html"
		}
		return nil, ""
	}
	nl := bytes.IndexByte(head, '\n')
	if nl < 0 || nl >= textSniffLen {
		return nil, ""
	}
	first := bytes.TrimSpace(head[:nl])
	if len(first) == 0 || bytes.ContainsAny(head[:nl], ",\t\":") {
		return nil, ""
	}
	switch c := first[0]; {
	case c >= '0' && c <= '9', c == '-', c == '#', c == 'N' && bytes.HasPrefix(first, []byte("N#!")):
		return nil, ""
	}
	for _, p := range []string{"true", "false", "null", "Forward to", "Pipe to"} {
		if bytes.HasPrefix(first, []byte(p)) {
			return nil, ""
		}
	}
	end := bytes.LastIndexByte(head[:textSniffLen], '\n')
	return head[:end+1], "text/plain"
}

// hasNotPlainByte reports whether b holds a notPlainByte, eight bytes at a
// time: a word with no byte under 0x20 and no 0xFF has none (line breaks
// and tabs send a word to the byte-by-byte test).
func hasNotPlainByte(b []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		if ((x-0x20*lo)&^x|(^x-lo)&x)&hi != 0 {
			for _, c := range b[:8] {
				if notPlainByte[c] {
					return true
				}
			}
		}
		b = b[8:]
	}
	for _, c := range b {
		if notPlainByte[c] {
			return true
		}
	}
	return false
}

// notPlainByte: the WHATWG binary data bytes, and 0xFF.
var notPlainByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c <= 0x08 || c == 0x0b || 0x0e <= c && c <= 0x1a || 0x1c <= c && c <= 0x1f || c == 0xff
	}
	return
}()

// Close finishes the inspection, removes any spill file and returns the
// Result. Later calls return the same Result.
func (i *Inspector) Close() Result {
	if i.closed {
		return i.res
	}
	i.closed = true
	if !i.decided {
		i.decide(true)
	}
	r := &i.res
	r.Size = i.size
	if i.h != nil {
		var sum [sha256.Size]byte
		var hx [2 * sha256.Size]byte
		hex.Encode(hx[:], i.h.Sum(sum[:0]))
		r.SHA256 = string(hx[:]) // one allocation; EncodeToString makes two
	}
	r.DetectedType = sniffType(i.head, i.opts.Declared)
	// mt.Is("application/x-ms-installer") would parse both types (two
	// maps per leaf); no other node of mimetype's tree has that type as
	// an alias, so comparing the detected type says the same.
	r.Executable = isExecutable(i.head) || r.DetectedType == "application/x-ms-installer"
	if i.kind == kindTNEF && r.DetectedType == "application/octet-stream" {
		// mimetype has no TNEF signature; name it in the IANA spelling.
		r.DetectedType = "application/vnd.ms-tnef"
	}

	if i.kind == kindNone && i.size > 64 && bytes.HasPrefix(i.tail[:], []byte("PK\x05\x06")) {
		// A zip end record at the very end of a body that does not start
		// as a zip: a zip appended to other data (an SFX, a polyglot). Zip
		// readers find it from the end; it was not listed here.
		r.addDefect(DefectZipPrefix)
	}
	if i.kind != kindNone {
		i.inspectContainer()
	} else if i.carrier != carrierNone {
		i.inspectCarrier()
	} else if isTNEFHint(&i.opts) && i.size > 0 {
		// Declared TNEF without the TNEF signature: nothing can be listed.
		r.addDefect(DefectTNEFCorrupt)
	}
	if i.uu != nil {
		i.uu.close()
	}
	i.release()
	return i.res
}

// inspectCarrier reads the body as the carrier its first bytes announce.
func (i *Inspector) inspectCarrier() {
	r := &i.res
	var src readerAtSize = bytes.NewReader(i.head)
	w := newWalker(i.opts, r, i.nest)
	if i.pdfs != nil {
		r.addActive(w.pdfStreamed(i.pdfs))
		return
	}
	if i.cspill != nil {
		defer i.cspill.remove()
		s, err := i.cspill.readerAt()
		if err != nil {
			r.addDefect(DefectSpillFailed)
			return
		}
		if i.cspill.overflow {
			r.addDefect(DefectLimitInspectSpill)
			w.truncated = true
		}
		src = s
	}
	r.addActive(w.carrier(i.carrier, src, 0, false))
}

// inspectContainer opens the body as the container its first bytes announce.
func (i *Inspector) inspectContainer() {
	r := &i.res
	var src readerAtSize
	truncated := false
	if i.spill == nil {
		src = bytes.NewReader(i.head)
	} else {
		defer i.spill.remove()
		if i.spill.err != nil {
			r.addDefect(DefectSpillFailed)
			return
		}
		if i.spill.overflow {
			r.addDefect(DefectLimitInspectSpill)
			truncated = true
			if i.kind.randomAccess() {
				return
			}
		}
		src = i.spill.readerAt()
	}
	w := newWalker(i.opts, r, i.nest)
	w.truncated = truncated
	w.container(i.kind, src, 0)
}

func (r *Result) addDefect(d string) {
	for _, x := range r.Defects {
		if x == d {
			return
		}
	}
	r.Defects = append(r.Defects, d)
}

// baseType drops parameters (charset=...) from a media type.
func baseType(s string) string {
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// spillFile is a temp file holding a body for random access, up to max
// bytes.
type spillFile struct {
	f        *os.File
	n, max   int64
	overflow bool
	err      error
}

func newSpill(dir string, max int64) *spillFile {
	s := &spillFile{max: max}
	s.f, s.err = createUnlinked(dir)
	return s
}

// createUnlinked creates a 0600 temp file (os.CreateTemp's mode) and
// removes its name at once, as proxy's spool does: the bytes are reachable
// only through the returned descriptor, and nothing is left behind however
// the process ends.
func createUnlinked(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "mailgate-inspect-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	if spillCreated != nil {
		spillCreated(f)
	}
	return f, nil
}

// spillCreated, when set (by tests), sees every spill file just created.
var spillCreated func(*os.File)

func (s *spillFile) write(p []byte) {
	if s.err != nil || s.overflow {
		return
	}
	if int64(len(p)) > s.max-s.n {
		p = p[:s.max-s.n]
		s.overflow = true
	}
	n, err := s.f.Write(p)
	s.n += int64(n)
	if err != nil {
		s.err = err
	}
}

func (s *spillFile) readerAt() readerAtSize {
	return sizedReaderAt{s.f, s.n}
}

func (s *spillFile) remove() {
	if s.f == nil {
		return
	}
	s.f.Close()
	s.f = nil
}
