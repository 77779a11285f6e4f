package mimeparse

// Line-break arithmetic over the offsets Parse records, for callers that
// write new bytes into a message (the rewriter): what they insert must end
// its lines as the surrounding bytes do.

// FieldLineBreak returns the line break that ends f, "\r\n" or "\n", from
// its offsets: End-Start spans the name, the colon, Raw and the break. It
// returns "" when they do not tell (no break at the end of input, or a
// Field not made by Parse). A one-byte break is taken as "\n": the header
// reader ends lines at "\n", so a lone "\r" can only end the input.
func FieldLineBreak(f Field) string {
	switch f.End - f.Start - int64(len(f.Name)+1+len(f.Raw)) {
	case 1:
		return "\n"
	case 2:
		return "\r\n"
	}
	return ""
}

// HeaderLineBreak returns the line-break style of a header block: that of
// its first field whose offsets tell (FieldLineBreak), or "".
func HeaderLineBreak(fs []Field) string {
	for _, f := range fs {
		if e := FieldLineBreak(f); e != "" {
			return e
		}
	}
	return ""
}
