// Package mimeparse reads a raw RFC 5322 message in one streaming pass and
// describes it: header fields, the MIME tree with byte offsets, and for each
// leaf what its decoded body really is (size, SHA-256, sniffed type,
// executables, archive entries, macros). Anomalies never fail the parse; they
// are recorded as defects (see defects.go).
//
// mimeparse knows nothing of SMTP or of policies.
package mimeparse

import (
	"strings"

	"mailgate/mimeparse/inspect"
)

// Field is one header field as it stands in the message.
type Field struct {
	Name  string // as written, without the colon
	Value string // unfolded and RFC 2047-decoded
	Raw   string // the field's bytes after the colon, folding kept, without the final line break
	// Start and End are byte offsets in the raw message: Start is the first
	// byte of the name, End is just past the field's final line break.
	Start, End int64
}

// ArchiveEntry is one member of an archive attachment (zip and friends),
// listed recursively up to the configured archive depth. It is the type the
// inspectors fill (inspect.Entry), so a part's Archive is theirs as found.
type ArchiveEntry = inspect.Entry

// Part is one node of the MIME tree: a container or a leaf.
type Part struct {
	Path  string // IMAP section: root container "0", "1", "2.1"; "2.u1" uuencode, "2.t1" TNEF, "2.e1" a file carried by a document, page, calendar or disk image
	Depth int
	// Parent is the index in Message.Parts of the enclosing part (always
	// before this one: the walk is depth first), -1 for the root. It is
	// structure for Go callers (the rewriter), not a policy fact.
	Parent           int    `expr:"-"`
	ContentType      string // effective, lower case
	Charset          string
	Disposition      string // "inline", "attachment" or "" (lower case)
	Filename         string // the name a mail client would show
	Names            []string
	Ext              string
	TransferEncoding string // lower case as declared, "" when absent
	IsMultipart      bool
	IsAttachment     bool   // what a client offers to save: disposition attachment, any name, or a leaf that is not text/*
	Size             int64  // decoded body size (leaves)
	SHA256           string // hex of the decoded body (leaves)
	DetectedType     string
	Executable       bool
	Encrypted        bool
	Macros           bool
	// Active is the active content found in the part, sorted, a closed
	// vocabulary (inspect.AllActive, docs/policy.md): "script",
	// "pdf-javascript", "pdf-openaction", "pdf-launch",
	// "ooxml-external-template", "ooxml-external-object", "ole-package",
	// "rtf-object", "search-uri", "remote-share", "msc-script",
	// "calendar-attachment", "onenote-embedded-file".
	Active  []string
	Archive []ArchiveEntry
	Defects []string
	Fields  []Field // this part's own header fields (the root's are Message.Fields)
	// Reading is "" for a part of the primary reading of the message, else
	// the name of the alternative reading it exists in (readings.go: e.g.
	// "last-content-type", "epilogue", "decoded-multipart"). Such parts
	// have paths "P.rK...." and are in Parts and Attachments too.
	Reading string

	// Byte offsets in the raw message: where the part's header starts, where
	// its body starts, and just past its last body byte (before the line
	// break that precedes the next boundary). For parts found inside a body
	// (uuencode, TNEF) they are the offsets of the enclosing part.
	HeaderOffset, BodyOffset, EndOffset int64

	origin origin // whether the part has bytes of its own in the raw message
}

// origin says how a part exists in the raw message.
type origin uint8

const (
	originOwn     origin = iota // its header and body are bytes of the raw message
	originFound                 // a file an inspector found in its parent's decoded body (uuencode, TNEF)
	originDecoded               // a part of a message enclosed with a transfer encoding (nested.go)
	originReading               // a part of an alternative reading (readings.go)
)

// Header returns the first decoded value of the part's field name, or "".
func (p *Part) Header(name string) string { return firstField(p.Fields, name) }

// Message is the result of Parse.
type Message struct {
	Fields  []Field  // top-level header fields in order
	Parts   []*Part  // every part, depth first, containers included; Parts[0] is the root
	Defects []string // every defect of the message and its parts, each once
	Size    int64    // raw bytes read
	Text    string   // decoded text of text/* parts, capped by Limits.TextBytes
	// HeaderTruncated is true when the top-level header had more fields
	// than Fields holds (past 5,000 fields or Limits.HeaderBytes; the
	// message has the defect limit-header-bytes). HasHeader still sees the
	// names of up to 5,000 more fields; an editor must re-read the header
	// block (ScanHeader) to see them all, as rules.Rewrite does.
	HeaderTruncated bool
	late            map[string]bool // lower-case names of fields past Fields

	// readingsLeft is the part of its readings budget a nested parse did
	// not use, handed back to the parser that started it (readings.go).
	readingsLeft int
}

// Header returns the first decoded value of the top-level field name, or "".
func (m *Message) Header(name string) string { return firstField(m.Fields, name) }

// HeaderAll returns every decoded value of the top-level field name.
func (m *Message) HeaderAll(name string) []string {
	var out []string
	for i := range m.Fields {
		if strings.EqualFold(m.Fields[i].Name, name) {
			out = append(out, m.Fields[i].Value)
		}
	}
	return out
}

// HasHeader reports whether the top-level header has a field name, among
// Fields or past them (HeaderTruncated).
func (m *Message) HasHeader(name string) bool {
	for i := range m.Fields {
		if strings.EqualFold(m.Fields[i].Name, name) {
			return true
		}
	}
	return m.late != nil && m.late[strings.ToLower(name)]
}

// Attachments returns every leaf except the nameless inline text/plain and
// text/html parts that make the body.
func (m *Message) Attachments() []*Part {
	var out []*Part
	for i, p := range m.Parts {
		if p.IsMultipart || isBodyText(p) || isMessageContainer(m.Parts, i) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func isBodyText(p *Part) bool {
	if p.Filename != "" || len(p.Names) > 0 || p.Disposition == "attachment" {
		return false
	}
	return p.ContentType == "text/plain" || p.ContentType == "text/html"
}

// isMessageContainer reports whether parts[i] is a message/* part parsed as
// an enclosed message: its first child (the next part, depth first) is the
// enclosed message's root and holds the leaves. A message/rfc822 part that
// was not parsed as one (past the depth limit, empty) is a leaf and stays an
// attachment, and so does one whose first child is a file found in it.
func isMessageContainer(parts []*Part, i int) bool {
	if !strings.HasPrefix(parts[i].ContentType, "message/") || i+1 >= len(parts) {
		return false
	}
	next := parts[i+1]
	return next.Parent == i && next.origin != originFound && next.origin != originReading
}

// Carrier returns the index of the part whose raw bytes hold Parts[i]: i
// itself for a part with bytes of its own, else the nearest enclosing part
// that has them. A file found inside a body (uuencode, TNEF) and the parts of
// a message enclosed with a transfer encoding exist only decoded; their
// offsets are their carrier's. It returns -1 for an index out of range.
func (m *Message) Carrier(i int) int {
	if i < 0 || i >= len(m.Parts) {
		return -1
	}
	for m.Parts[i].origin != originOwn {
		up := m.Parts[i].Parent
		if up < 0 || up >= i {
			break // not from Parse: parents come first
		}
		i = up
	}
	return i
}

func firstField(fs []Field, name string) string {
	for i := range fs {
		if strings.EqualFold(fs[i].Name, name) {
			return fs[i].Value
		}
	}
	return ""
}

// Limits bound one parse. Every limit hit adds a defect named limit-<name>.
type Limits struct {
	MimeDepth      int   // nesting of multiparts and message/rfc822 (limit-mime-depth)
	MimeParts      int   // parts in the tree (limit-mime-parts)
	HeaderBytes    int   // bytes of one header block (limit-header-bytes)
	LineLength     int   // bytes of one line (limit-line-length)
	ArchiveDepth   int   // nested archives (limit-archive-depth)
	ArchiveEntries int   // members listed per attachment (limit-archive-entries)
	InspectSpill   int64 // bytes of one decoded body spilled for random access (limit-inspect-spill)
	// DecompressedBytes is one budget for the whole message: every inspector's
	// decompressed output together (limit-decompressed-bytes).
	DecompressedBytes int64
	// ArchiveDict is the largest dictionary or model one decoder may allocate
	// (limit-archive-dict).
	ArchiveDict int64
	TextBytes   int // bytes of decoded text kept in Message.Text
	SpillDir    string
	// NoHash leaves every Part's SHA256 empty (inspect.Options.NoHash).
	NoHash bool

	// budget is DecompressedBytes as one count for the whole message,
	// created by Parse and shared with the parses of enclosed messages.
	budget *inspect.Budget
	// readings is how many alternative readings a nested parse may start,
	// its own and those of its nested parses (readings.go); 0 with
	// readingsSet false is Parse's whole maxReadings.
	readings    int
	readingsSet bool
	// outerFirst gives a delimiter line that two open multiparts share to
	// the outermost (the reading "outer-boundary"); set only for that
	// reading's nested parse.
	outerFirst bool
}

// DefaultLimits are the limits of docs/DESIGN.md's configuration.
func DefaultLimits() Limits {
	return Limits{
		MimeDepth:         20,
		MimeParts:         1000,
		HeaderBytes:       1 << 20,
		LineLength:        64 << 10,
		ArchiveDepth:      3,
		ArchiveEntries:    1000,
		InspectSpill:      64 << 20,
		DecompressedBytes: 256 << 20,
		ArchiveDict:       64 << 20,
		TextBytes:         256 << 10,
	}
}
