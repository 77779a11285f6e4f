package inspect

import (
	"bytes"
	"io"
	"sort"
	"sync"
)

// Carriers are formats that are not archives yet carry files or active
// content: PDF (embedded files, JavaScript, launch actions), RTF (OLE
// objects in \objdata), OneNote (embedded file objects), HTML and SVG
// (scripts, base64 and data: URL blobs), iCalendar (ATTACH;VALUE=BINARY)
// and disk images (FAT12/16/32 in a raw image, an MBR or a fixed VHD).
// Their bodies are kept (in memory up to carrierMem, then in a temp file,
// bounded by Options.Spill) and read at Close by the readers in pdf.go,
// rtf.go, onenote.go, markup.go, ics.go and fat.go. Each reader is bounded
// by the body size, by Options.Spill and by the message's Budget.
//
// What a carrier carries becomes an Embedded of Kind 'e' (a leaf "2.e1" in
// mimeparse) when the carrier is the attachment itself, or a document's own
// part (an OOXML embedding); inside an archive it is listed as an entry one
// level deeper. What it would do when opened is in Result.Active (or
// Entry.Active), a closed vocabulary:
const (
	ActiveScript          = "script"                  // HTML/SVG <script>, on* event handlers, javascript: URLs
	ActivePDFJavaScript   = "pdf-javascript"          // a PDF /JavaScript or /JS action
	ActivePDFOpenAction   = "pdf-openaction"          // a PDF /OpenAction or /AA (additional actions): runs on open
	ActivePDFLaunch       = "pdf-launch"              // a PDF /Launch action: starts a program or opens a file
	ActiveExternalTmpl    = "ooxml-external-template" // an OOXML attachedTemplate relationship with TargetMode External
	ActiveExternalObject  = "ooxml-external-object"   // another external OOXML relationship that loads content (oleObject, frame, subDocument)
	ActiveOLEPackage      = "ole-package"             // an OLE Package (Ole10Native) object: a file wrapped to run on double click
	ActiveRTFObject       = "rtf-object"              // an RTF \object / \objdata
	ActiveSearchURI       = "search-uri"              // a search: or search-ms: URI (link, refresh, location)
	ActiveRemoteShare     = "remote-share"            // a file:// URL or UNC path naming another host
	ActiveMSCScript       = "msc-script"              // a Microsoft Management Console file with script or a console taskpad command
	ActiveCalendarBinary  = "calendar-attachment"     // an iCalendar ATTACH;VALUE=BINARY
	ActiveOneNoteEmbedded = "onenote-embedded-file"   // a OneNote section with an embedded file object
)

// AllActive is the vocabulary of Result.Active, for documentation.
var AllActive = []string{
	ActiveScript, ActivePDFJavaScript, ActivePDFOpenAction, ActivePDFLaunch, ActiveExternalTmpl,
	ActiveExternalObject, ActiveOLEPackage, ActiveRTFObject, ActiveSearchURI, ActiveRemoteShare,
	ActiveMSCScript, ActiveCalendarBinary, ActiveOneNoteEmbedded,
}

// carrierMem is how much of a carrier body is kept in memory before the
// rest goes to a temp file.
const carrierMem = 1 << 20

type carrier uint8

const (
	carrierNone carrier = iota
	carrierPDF
	carrierRTF
	carrierOneNote
	carrierMarkup
	carrierICS
	carrierDisk
	carrierMSC
)

var (
	magicOneNote = []byte{0xE4, 0x52, 0x5C, 0x7B, 0x8C, 0xD8, 0xA7, 0x4D, 0xAE, 0xB1, 0x53, 0x78, 0xD0, 0x29, 0x96, 0xD3}
	magicVHD     = []byte("conectix")
	magicVHDX    = []byte("vhdxfile")
)

// sniffCarrier names the carrier the first bytes (and, for markup and
// calendars, the declared type or name) announce.
func sniffCarrier(head []byte, o *Options) carrier {
	switch {
	case bytes.Contains(head[:min(len(head), 1024)], []byte("%PDF-")):
		return carrierPDF
	case bytes.HasPrefix(head, []byte(`{\rt`)):
		return carrierRTF
	case bytes.HasPrefix(head, magicOneNote):
		return carrierOneNote
	case bytes.HasPrefix(head, magicVHD), bytes.HasPrefix(head, magicVHDX), isFATBoot(head), isMBRDisk(head):
		return carrierDisk
	}
	ext := extOf(o.Name)
	t := bytes.TrimLeft(head, "\xef\xbb\xbf \t\r\n")
	switch {
	case o.Declared == "text/calendar" || o.Declared == "application/ics" || ext == "ics" ||
		hasPrefixFold(t, "BEGIN:VCALENDAR"):
		return carrierICS
	case ext == "msc" || hasPrefixFold(t, "<?xml") && bytes.Contains(head, []byte("<MMC_ConsoleFile")):
		return carrierMSC
	case o.Declared == "text/html" || o.Declared == "image/svg+xml" || o.Declared == "application/xhtml+xml" ||
		ext == "html" || ext == "htm" || ext == "xhtml" || ext == "shtml" || ext == "svg" || ext == "mht" || ext == "mhtml":
		return carrierMarkup
	case len(t) > 0 && t[0] == '<' && (containsFold(head, "<html") || containsFold(head, "<svg") || containsFold(head, "<script")):
		return carrierMarkup
	}
	return carrierNone
}

func hasPrefixFold(b []byte, p string) bool {
	return len(b) >= len(p) && bytes.EqualFold(b[:len(p)], []byte(p))
}

// containsFold reports whether b contains the lower-case ASCII string s in
// any case.
func containsFold(b []byte, s string) bool {
	first := s[0]
	upper := first - 32
	for i := 0; i+len(s) <= len(b); i++ {
		c := b[i]
		if c != first && c != upper {
			continue
		}
		if bytes.EqualFold(b[i:i+len(s)], []byte(s)) {
			return true
		}
	}
	return false
}

// carrierRecover turns a panic in a carrier reader into carrier-corrupt;
// the fuzz tests switch it off to see the panic.
var carrierRecover = true

// carried is what one carrier reader found.
type carried struct {
	active []string
}

func (c *carried) add(a string) {
	for _, x := range c.active {
		if x == a {
			return
		}
	}
	c.active = append(c.active, a)
}

// carrier reads src as carrier format c. depth is the carrier's depth (0
// for the attachment itself); inArchive is false for the attachment and
// for the parts of its own document (OOXML embeddings), whose carried
// files become Embedded leaves rather than archive entries.
func (w *walker) carrier(c carrier, src readerAtSize, depth int, inArchive bool) []string {
	var out carried
	defer func() {
		if carrierRecover && recover() != nil {
			w.res.addDefect(DefectCarrierCorrupt)
		}
	}()
	emb := func(name string, r io.Reader, size int64) bool { return w.carry(name, r, size, depth, inArchive) }
	switch c {
	case carrierPDF:
		w.pdf(src, &out, emb)
	case carrierRTF:
		w.rtf(src, &out, emb)
	case carrierOneNote:
		w.oneNote(src, &out, emb)
	case carrierMarkup:
		w.markup(src, &out, emb)
	case carrierICS:
		w.ics(src, &out, emb)
	case carrierDisk:
		w.disk(src, &out, emb)
	case carrierMSC:
		w.msc(src, &out)
	}
	sort.Strings(out.active)
	return out.active
}

// carry hands on one file found inside a carrier: a leaf of its own
// (Embedded, Kind 'e') or an archive entry one level below the carrier.
// r is already budgeted when it decompresses. false: stop, a limit is hit.
func (w *walker) carry(name string, r io.Reader, size int64, depth int, inArchive bool) bool {
	if inArchive {
		e := Entry{Name: name, Ext: extOf(name), Size: size, Depth: depth + 1}
		ok, err := w.member(&e, r)
		if err != nil {
			w.res.addDefect(DefectCarrierCorrupt)
		}
		return ok
	}
	if w.nest >= maxNest {
		w.res.addDefect(DefectLimitEmbedded)
		return false
	}
	n := 0
	for _, e := range w.res.Embedded {
		if e.Kind == 'e' {
			n++
		}
	}
	if n >= maxEmbedded {
		w.res.addDefect(DefectLimitEmbedded)
		return false
	}
	opts := w.opts
	opts.Text, opts.Name, opts.Declared = false, name, ""
	ins := newNested(opts, w.nest+1)
	if _, err := io.Copy(ins, r); err != nil {
		w.res.addDefect(DefectCarrierCorrupt)
	}
	w.res.Embedded = append(w.res.Embedded, Embedded{Kind: 'e', Name: name, Result: ins.Close()})
	return !w.spent()
}

// addActive records a in the Result once.
func (r *Result) addActive(list []string) {
	for _, a := range list {
		dup := false
		for _, x := range r.Active {
			if x == a {
				dup = true
				break
			}
		}
		if !dup {
			r.Active = append(r.Active, a)
		}
	}
	sort.Strings(r.Active)
}

// memSpill keeps a carrier body: in memory up to carrierMem, then in a temp
// file, up to max bytes in all.
type memSpill struct {
	mem      []byte
	buf      *[]byte // mem's pooled array
	file     *spillFile
	max      int64
	dir      string
	overflow bool
}

// carrierBufs holds the in-memory part of carrier bodies (carrierMem
// bytes) and the readers' chunk buffers, reused from body to body.
var carrierBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, carrierMem+pdfOverlap)
	return &b
}}

func getCarrierBuf() *[]byte { return carrierBufs.Get().(*[]byte) }

func putCarrierBuf(b *[]byte) {
	*b = (*b)[:0]
	carrierBufs.Put(b)
}

func (m *memSpill) write(p []byte) {
	if m.file != nil {
		m.file.write(p)
		m.overflow = m.file.overflow
		return
	}
	if m.buf == nil {
		m.buf = getCarrierBuf()
		m.mem = *m.buf
	}
	if int64(len(m.mem)+len(p)) <= min(carrierMem, m.max) {
		m.mem = append(m.mem, p...)
		return
	}
	if int64(len(m.mem)+len(p)) > m.max && m.max <= carrierMem {
		m.mem = append(m.mem, p[:m.max-int64(len(m.mem))]...)
		m.overflow = true
		return
	}
	m.file = newSpill(m.dir, m.max)
	m.file.write(m.mem)
	m.release()
	m.file.write(p)
	m.overflow = m.file.overflow
}

func (m *memSpill) release() {
	if m.buf != nil {
		putCarrierBuf(m.buf)
	}
	m.buf, m.mem = nil, nil
}

func (m *memSpill) readerAt() (readerAtSize, error) {
	if m.file == nil {
		return bytes.NewReader(m.mem), nil
	}
	if m.file.err != nil {
		return nil, m.file.err
	}
	return m.file.readerAt(), nil
}

func (m *memSpill) remove() {
	if m.file != nil {
		m.file.remove()
	}
	m.release()
}

// window reads up to n bytes at off (fewer at the end of src).
func window(src io.ReaderAt, off, n int64) []byte {
	return readSection(src, off, n)
}
