package mimeparse

import (
	"encoding/base64"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

var charsets sync.Map // lower-case name → encoding.Encoding (nil: unknown)

// lookupCharset finds a charset by name: first the WHATWG labels (what
// browsers and modern mail clients use, so iso-8859-1 reads as
// windows-1252 and gb2312 as gbk), then the IANA MIME and IANA names.
// RFC 2231 language suffixes ("utf-8*en") are dropped.
func lookupCharset(name string) (encoding.Encoding, bool) {
	name = strings.ToLower(strings.Trim(name, " \t\"'"))
	if i := strings.IndexByte(name, '*'); i >= 0 {
		name = name[:i]
	}
	if v, ok := charsets.Load(name); ok {
		e, _ := v.(encoding.Encoding)
		return e, e != nil
	}
	var e encoding.Encoding
	switch name {
	case "utf-8", "utf8", "us-ascii", "ascii", "":
		e = encoding.Nop
	default:
		var err error
		e, err = htmlindex.Get(name)
		if err != nil || e == nil {
			e, err = ianaindex.MIME.Encoding(name)
		}
		if err != nil || e == nil {
			e, err = ianaindex.IANA.Encoding(name)
		}
		if err != nil {
			e = nil
		}
	}
	charsets.Store(name, e)
	return e, e != nil
}

// utf8As returns b and true when toUTF8 would return it unchanged: a
// charset that is UTF-8 or ASCII-compatible with no conversion, and b
// valid UTF-8.
func utf8As(charset string, b []byte) ([]byte, bool) {
	if e, ok := lookupCharset(charset); ok && e == encoding.Nop && utf8.Valid(b) {
		return b, true
	}
	return nil, false
}

// toUTF8 converts b from charset to UTF-8. Unknown charsets keep the bytes
// (invalid UTF-8 replaced by U+FFFD) and report ok=false.
func toUTF8(charset string, b []byte) (string, bool) {
	e, ok := lookupCharset(charset)
	if !ok {
		return strings.ToValidUTF8(string(b), "\uFFFD"), false
	}
	if e == encoding.Nop {
		if utf8.Valid(b) {
			return string(b), true
		}
		return strings.ToValidUTF8(string(b), "\uFFFD"), true
	}
	out, err := e.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD"), true
	}
	return strings.ToValidUTF8(string(out), "\uFFFD"), true
}

// decodeHeaderWords decodes the RFC 2047 encoded words in an unfolded
// header value. White space between two adjacent encoded words is dropped
// (RFC 2047 §6.2). Words that cannot be decoded stay as written.
func decodeHeaderWords(s string) (string, []string) {
	if !strings.Contains(s, "=?") {
		return s, nil
	}
	var b strings.Builder
	var defects []string
	prevWord := false
	pendingWS := ""
	for len(s) > 0 {
		i := strings.Index(s, "=?")
		if i < 0 {
			b.WriteString(pendingWS)
			b.WriteString(s)
			pendingWS = ""
			break
		}
		before := s[:i]
		text, n, ok, d := decodeWord(s[i:])
		if d != "" {
			defects = append(defects, d)
		}
		if !ok {
			b.WriteString(pendingWS)
			pendingWS = ""
			b.WriteString(s[:i+2])
			s = s[i+2:]
			prevWord = false
			continue
		}
		if prevWord && strings.Trim(before, " \t") == "" {
			// adjacent encoded words: drop the white space between them
		} else {
			b.WriteString(pendingWS)
			b.WriteString(before)
		}
		pendingWS = ""
		b.WriteString(text)
		s = s[i+n:]
		prevWord = true
		// keep white space that follows, in case no word comes next
		j := 0
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		pendingWS = s[:j]
		s = s[j:]
	}
	b.WriteString(pendingWS)
	return b.String(), defects
}

const maxWord = 2048

// decodeWord decodes the encoded word at the start of s
// ("=?charset?B?text?="), returning the text, the bytes used, and a defect.
func decodeWord(s string) (text string, n int, ok bool, defect string) {
	// =?charset?enc?text?=
	q1 := strings.IndexByte(s[2:], '?')
	if q1 < 0 {
		return "", 0, false, ""
	}
	q1 += 2
	if q1+3 > len(s) || s[q1+2] != '?' {
		return "", 0, false, ""
	}
	charset := s[2:q1]
	enc := s[q1+1]
	// RFC 2047 §2 allows 75 characters; real mailers write longer words,
	// so accept up to maxWord, which also keeps a header full of "=?"
	// from costing quadratic time.
	rest := s[q1+3:]
	if len(rest) > maxWord {
		rest = rest[:maxWord]
	}
	end := strings.Index(rest, "?=")
	if end < 0 || charset == "" {
		return "", 0, false, ""
	}
	payload := s[q1+3 : q1+3+end]
	n = q1 + 3 + end + 2
	if strings.ContainsAny(payload, " \t") {
		return "", 0, false, ""
	}
	var raw []byte
	switch enc {
	case 'B', 'b':
		p := strings.TrimRight(payload, "=")
		var err error
		raw, err = base64.RawStdEncoding.DecodeString(p)
		if err != nil {
			return "", 0, false, DefectInvalidEncodedWord
		}
	case 'Q', 'q':
		raw = decodeQWord(payload)
	default:
		return "", 0, false, DefectInvalidEncodedWord
	}
	t, known := toUTF8(charset, raw)
	if !known {
		return t, n, true, DefectUnknownCharset
	}
	return t, n, true, ""
}

func decodeQWord(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_':
			out = append(out, ' ')
		case c == '=' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// validUTF8 is utf8.ValidString, named for the call sites.
func validUTF8(s string) bool { return utf8.ValidString(s) }
