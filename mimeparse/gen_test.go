package mimeparse

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand"
	"strings"
)

// lineWriter breaks base64 into 76-character CRLF lines.
type lineWriter struct {
	w   *bufio.Writer
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(76-l.col, len(p))
		l.w.Write(p[:k])
		l.col += k
		p = p[k:]
		if l.col == 76 {
			l.w.WriteString("\r\n")
			l.col = 0
		}
	}
	return n, nil
}

// writeAttachment writes one base64 part of size random bytes.
func writeAttachment(w *bufio.Writer, boundary, name string, size int64, rng *rand.Rand) {
	fmt.Fprintf(w, "--%s\r\nContent-Type: application/octet-stream; name=%q\r\n"+
		"Content-Disposition: attachment; filename=%q\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary, name, name)
	lw := &lineWriter{w: w}
	enc := base64.NewEncoder(base64.StdEncoding, lw)
	buf := make([]byte, 48<<10)
	for size > 0 {
		k := int(min(int64(len(buf)), size))
		rng.Read(buf[:k])
		enc.Write(buf[:k])
		size -= int64(k)
	}
	enc.Close()
	w.WriteString("\r\n")
}

const textBody = "Hello,\r\n\r\nplease find the report attached. The figures for the third quarter are in\r\n" +
	"the second sheet; the summary is below.\r\n\r\n"

// genMessage writes a generated message of the given shape to w:
// "text" (2 KB of text), "alternative" (text and html), "attach1m" (one
// 1 MB attachment), "attach20m" (text and four 5 MB attachments), "nested"
// (multiparts 15 deep), "big" (ten attachments, 200 MB in all).
func genMessage(w io.Writer, shape string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	rng := rand.New(rand.NewSource(1))
	bw.WriteString("From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: report\r\n" +
		"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <gen@example.org>\r\nMIME-Version: 1.0\r\n")
	text := strings.Repeat(textBody, 2048/len(textBody)+1)[:2048]
	switch shape {
	case "text":
		bw.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n" + text)
	case "alternative":
		bw.WriteString("Content-Type: multipart/alternative; boundary=alt\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
			text + "\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<html><body><p>" +
			strings.ReplaceAll(text, "\r\n", "</p>=\r\n<p>") + "</p></body></html>\r\n--alt--\r\n")
	case "attach1m", "attach20m", "big":
		n, size := 1, int64(1<<20)
		switch shape {
		case "attach20m":
			n, size = 4, 5<<20
		case "big":
			n, size = 10, 15<<20 // 10 × 20 MB of base64
		}
		bw.WriteString("Content-Type: multipart/mixed; boundary=mix\r\n\r\n--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n")
		for i := range n {
			writeAttachment(bw, "mix", fmt.Sprintf("file%d.bin", i), size, rng)
		}
		bw.WriteString("--mix--\r\n")
	case "nested":
		const depth = 15
		bw.WriteString("Content-Type: multipart/mixed; boundary=n0\r\n\r\n")
		for i := 1; i < depth; i++ {
			fmt.Fprintf(bw, "--n%d\r\nContent-Type: multipart/mixed; boundary=n%d\r\n\r\n", i-1, i)
		}
		fmt.Fprintf(bw, "--n%d\r\nContent-Type: text/plain\r\n\r\n%s\r\n", depth-1, text)
		for i := depth - 1; i >= 0; i-- {
			fmt.Fprintf(bw, "--n%d--\r\n", i)
		}
	default:
		return fmt.Errorf("unknown shape %q", shape)
	}
	return bw.Flush()
}
