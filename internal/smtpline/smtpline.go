// Package smtpline reads SMTP lines with a bound: the client side of the
// proxy and the upstream client both use it.
package smtpline

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
)

// ErrLineTooLong is ReadLine's answer to a line over its limit.
var ErrLineTooLong = errors.New("smtp: line too long")

// ReadLine reads one line of at most max bytes, without its CRLF or LF. A
// longer line is consumed to its end and reported as ErrLineTooLong.
func ReadLine(br *bufio.Reader, max int) (string, error) {
	var buf []byte
	long := false
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > max+2 {
			long = true
		} else {
			buf = append(buf, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && (len(buf) > 0 || long) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		break
	}
	if long {
		return "", ErrLineTooLong
	}
	buf = buf[:len(buf)-1]
	if n := len(buf); n > 0 && buf[n-1] == '\r' {
		buf = buf[:n-1]
	}
	return string(buf), nil
}

// XtextDecode decodes xtext (RFC 3461 §4): "+XX" is the byte XX.
func XtextDecode(s string) (string, bool) {
	if !strings.Contains(s, "+") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '+' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), true
}

// XtextEncode encodes s as xtext (RFC 3461 §4).
func XtextEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 || c == '+' || c == '=' {
			b.WriteString("+" + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
