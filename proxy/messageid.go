package proxy

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"mailgate/spool"
)

// maxHeaderScan bounds how much of a spooled message spoolMessageID reads.
const maxHeaderScan = 64 << 10

// spoolMessageID finds the Message-ID field in the header of a spooled
// message that was not parsed (no policy needs the message, or the parse
// was abandoned), reading at most maxHeaderScan bytes; "" when there is
// none.
func spoolMessageID(sp *spool.Spool) string {
	r, err := sp.Reader()
	if err != nil {
		return ""
	}
	return headerMessageID(io.LimitReader(r, maxHeaderScan))
}

func headerMessageID(r io.Reader) string {
	br := bufio.NewReader(r)
	var cur []byte
	found := false
	for {
		line, err := br.ReadBytes('\n')
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) > 0 && (trimmed[0] == ' ' || trimmed[0] == '\t') {
			if found {
				cur = append(append(cur, ' '), bytes.TrimSpace(trimmed)...)
			}
		} else {
			if found {
				return oneLine(string(cur))
			}
			if len(trimmed) == 0 && len(line) > 0 {
				return "" // end of the header
			}
			if name, value, ok := bytes.Cut(trimmed, []byte(":")); ok && strings.EqualFold(string(bytes.TrimSpace(name)), "Message-ID") {
				found, cur = true, append([]byte(nil), bytes.TrimSpace(value)...)
			}
		}
		if err != nil {
			if found {
				return oneLine(string(cur))
			}
			return ""
		}
	}
}

// oneLine collapses white space and bounds a header value for the log.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}
