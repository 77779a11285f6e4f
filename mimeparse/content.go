package mimeparse

import (
	"strings"
)

// described holds what describe learnt that the Part has no field for.
type described struct {
	boundary   string
	boundaries []string // every boundary= value, in order (several: multiple-boundary-parameters)
}

// describe fills part's MIME fields from its header: effective type,
// charset, transfer encoding, disposition, file names, and the defects of
// duplicated or contradictory fields.
func (p *parser) describe(part *Part, defaultType string) described {
	var out described
	var ctField, cteField, cdField *Field
	for i := range part.Fields {
		f := &part.Fields[i]
		switch fieldKey(f.Name) {
		case "content-type":
			if ctField != nil {
				p.partDefect(part, DefectDuplicateContentType)
				continue
			}
			ctField = f
		case "content-transfer-encoding":
			if cteField != nil {
				p.partDefect(part, DefectDuplicateCTE)
				continue
			}
			cteField = f
		case "content-disposition":
			if cdField != nil {
				p.partDefect(part, DefectDuplicateDisposition)
				// every declared name counts (see below)
				continue
			}
			cdField = f
		}
	}
	add := func(d string) { p.partDefect(part, d) }

	// Content-Type (RFC 2045 §5.2: missing or invalid means the default).
	part.ContentType = defaultType
	var ct mediaHeader
	if ctField != nil {
		ct = parseMediaHeader(unfold(ctField.Raw))
		for _, d := range ct.defects {
			add(d)
		}
		if validType(ct.value) {
			part.ContentType = ct.value
		} else {
			add(DefectInvalidContentType)
			// "application/pdf name=x.pdf" (a missing ";"): clients read the
			// leading type/subtype.
			if f := strings.FieldsFunc(ct.value, func(r rune) bool {
				return r == ' ' || r == '\t' || r == '<' || r == '>' || r == ',' || r == '"'
			}); len(f) > 0 && validType(f[0]) {
				part.ContentType = f[0]
			}
		}
		if cs, ok := ct.get("charset"); ok {
			// RFC 2045 §5.1 allows comments: "charset=us-ascii (Plain text)"
			part.Charset = strings.ToValidUTF8(strings.ToLower(strings.TrimSpace(stripComment(cs))), "\uFFFD")
		}
		if b, ok := ct.get("boundary"); ok {
			out.boundary = strings.TrimRight(b, " \t")
			if all := ct.getAll("boundary"); len(all) > 1 {
				for _, x := range all {
					out.boundaries = append(out.boundaries, strings.TrimRight(x, " \t"))
				}
			}
		}
	}
	if part.Charset == "" && strings.HasPrefix(part.ContentType, "text/") {
		part.Charset = "us-ascii" // RFC 2045 §5.2
	}
	if part.Charset != "" && strings.HasPrefix(part.ContentType, "text/") {
		if _, ok := lookupCharset(part.Charset); !ok {
			add(DefectUnknownCharset)
		}
	}

	switch part.ContentType {
	case "message/partial":
		add(DefectPartialMessage)
	case "message/external-body":
		add(DefectExternalBody)
	}

	// Content-Transfer-Encoding (RFC 2045 §6.1).
	if cteField != nil {
		cte := strings.ToValidUTF8(strings.ToLower(strings.TrimSpace(stripComment(unfold(cteField.Raw)))), "\uFFFD")
		part.TransferEncoding = cte
		switch cte {
		case "7bit", "8bit", "binary", "base64", "quoted-printable", "":
		case "x-uuencode", "uuencode", "x-uue", "uue":
			// kept as is; the uuencode blocks inside become leaves
		default:
			add(DefectUnknownCTE)
		}
	}

	// Content-Disposition (RFC 2183) and the names.
	var cd mediaHeader
	if cdField != nil {
		cd = parseMediaHeader(unfold(cdField.Raw))
		for _, d := range cd.defects {
			add(d)
		}
		switch cd.value {
		case "inline", "attachment":
			part.Disposition = cd.value
		case "":
		default:
			// RFC 2183 §2.8: an unrecognised disposition is treated as attachment.
			part.Disposition = "attachment"
		}
	}
	filenames := cd.getAll("filename")
	names := ct.getAll("name")
	// names from duplicate Content-Disposition fields count too
	for i := range part.Fields {
		f := &part.Fields[i]
		if f != cdField && strings.EqualFold(f.Name, "content-disposition") {
			extra := parseMediaHeader(unfold(f.Raw))
			filenames = append(filenames, extra.getAll("filename")...)
		}
	}
	if fn, ok := cd.get("filename"); ok && strings.TrimSpace(fn) != "" {
		part.Filename = fn
	} else if n, ok := ct.get("name"); ok && strings.TrimSpace(n) != "" {
		part.Filename = n
	}
	for i := range filenames {
		filenames[i] = p.nameText(part, filenames[i])
	}
	for i := range names {
		names[i] = p.nameText(part, names[i])
	}
	part.Filename = p.nameText(part, part.Filename)
	var all []string
	for _, n := range filenames {
		all = appendUnique(all, strings.TrimSpace(n))
	}
	for _, n := range names {
		all = appendUnique(all, strings.TrimSpace(n))
	}
	if len(filenames) > 0 && len(names) > 0 {
		fn, _ := cd.get("filename")
		n, _ := ct.get("name")
		if strings.TrimSpace(p.nameText(part, fn)) != strings.TrimSpace(p.nameText(part, n)) {
			add(DefectNameFilenameMismatch)
		}
	}
	for _, n := range all {
		nameDefects(n, add)
	}
	for _, n := range all {
		if k := controlIndex(n); k >= 0 {
			// C-string consumers see the name up to the control character
			add(DefectControlCharInFilename)
			if cut := strings.TrimSpace(n[:k]); cut != "" {
				all = appendUnique(all, cut)
			}
		}
	}
	if len(all) > 1 {
		part.Names = all
	}
	part.Filename = strings.TrimSpace(part.Filename)
	part.Ext = extOf(part.Filename)

	// IsAttachment: what a client offers to save. Disposition attachment, or
	// any leaf with a name, or any leaf that is not text (containers are
	// reset by the caller).
	part.IsAttachment = part.Disposition == "attachment" || part.Filename != "" ||
		!strings.HasPrefix(part.ContentType, "text/")
	return out
}

// nameText makes a declared name valid UTF-8. Raw 8-bit bytes in a name
// (no RFC 2231 or 2047 encoding) are read in the part's charset when it
// declares one, as Outlook and Thunderbird do; else they become U+FFFD.
func (p *parser) nameText(part *Part, s string) string {
	if validUTF8(s) {
		return s
	}
	p.partDefect(part, Defect8bitHeader)
	if part.Charset != "" {
		if t, ok := toUTF8(part.Charset, []byte(s)); ok {
			return t
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// validType reports whether s is "type/subtype" made of RFC 2045 tokens.
func validType(s string) bool {
	t, sub, ok := strings.Cut(s, "/")
	return ok && isToken(t) && isToken(sub)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?=", c) >= 0 {
			return false
		}
	}
	return true
}

// describedFields are the field names describe looks for, lower case.
var describedFields = [...]string{"content-type", "content-transfer-encoding", "content-disposition"}

// fieldKey is strings.ToLower(name) whenever that is one of
// describedFields, and otherwise some string that is none of them. An ASCII
// name is compared without allocating; any other goes through
// strings.ToLower so that Unicode case mapping (U+0130 lowers to 'i') reads
// a name exactly as before.
func fieldKey(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return strings.ToLower(name)
		}
	}
	for _, d := range describedFields {
		if len(name) == len(d) && asciiEqualFold(name, d) {
			return d
		}
	}
	return ""
}

// asciiEqualFold compares an ASCII string with a lower-case one, ignoring
// the case of ASCII letters only.
func asciiEqualFold(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
