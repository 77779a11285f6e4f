package inspect

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"strings"
)

// iCalendar (RFC 5545): an ATTACH property with VALUE=BINARY and
// ENCODING=BASE64 carries a whole file inline in the invitation, which
// Outlook offers to open. Lines are unfolded; each such value is decoded
// and handed on, named by its FILENAME or X-FILENAME parameter
// (Outlook's X-MS-... forms too). An ATTACH that is a URI (the honest
// form) is only looked at for search: and remote file targets.

const icsMaxLine = 64 << 20 // one unfolded property, within Options.Spill

func (w *walker) ics(src readerAtSize, out *carried, emb func(string, io.Reader, int64) bool) {
	br := bufio.NewReaderSize(io.NewSectionReader(src, 0, src.Size()), 64<<10)
	limit := min(int64(icsMaxLine), w.opts.Spill)
	var line []byte
	found := 0
	flush := func() bool {
		defer func() { line = line[:0] }()
		if !hasPrefixFold(line, "ATTACH") || len(line) > 6 && line[6] != ';' && line[6] != ':' {
			return true
		}
		colon := icsColon(line)
		if colon < 0 {
			return true
		}
		params, value := string(line[6:colon]), line[colon+1:]
		up := strings.ToUpper(params)
		if !strings.Contains(up, "VALUE=BINARY") && !strings.Contains(up, "ENCODING=BASE64") {
			urlFacts(string(value), out)
			return true
		}
		out.add(ActiveCalendarBinary)
		if found++; found > maxEmbedded {
			w.res.addDefect(DefectLimitEmbedded)
			return false
		}
		name := ""
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(p, "=")
			if !ok {
				continue
			}
			switch strings.ToUpper(k) {
			case "FILENAME", "X-FILENAME", "X-MS-FILENAME", "X-APPLE-FILENAME", "X-ORACLE-FILENAME":
				name = strings.Trim(v, `"`)
			}
		}
		clean := bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, value)
		dec := base64.NewDecoder(base64.RawStdEncoding, bytes.NewReader(bytes.TrimRight(clean, "=")))
		return emb(name, dec, int64(len(clean))*3/4)
	}
	for {
		l, err := br.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			var more []byte
			more, err = br.ReadSlice('\n')
			l = append(append([]byte(nil), l...), more...)
		}
		body := bytes.TrimRight(l, "\r\n")
		if len(body) > 0 && (body[0] == ' ' || body[0] == '\t') {
			if int64(len(line)+len(body)) > limit {
				w.res.addDefect(DefectLimitEmbedded)
				return
			}
			line = append(line, body[1:]...)
		} else {
			if len(line) > 0 && !flush() {
				return
			}
			line = append(line[:0], body...)
		}
		if err != nil {
			if len(line) > 0 {
				flush()
			}
			return
		}
	}
}

// icsColon finds the colon that ends a property's name and parameters
// (colons inside quoted parameter values do not count).
func icsColon(b []byte) int {
	q := false
	for i, c := range b {
		switch {
		case c == '"':
			q = !q
		case c == ':' && !q:
			return i
		}
	}
	return -1
}
