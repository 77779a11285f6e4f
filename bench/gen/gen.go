// Package gen builds the deterministic messages the benchmarks run on: the
// parser shapes of issue 3 and the proxy sizes of issue 6. The same name
// always yields the same bytes (a fixed-seed PRNG, a fixed date), so figures
// from different runs and machines describe the same input.
package gen

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime/quotedprintable"
	"strings"
)

// Shape is one named message.
type Shape struct {
	Name string
	Make func() []byte
}

// ParserShapes are the shapes of the parser comparison (issue 3).
var ParserShapes = []Shape{
	{"small-text", SmallText},
	{"html-alternative", HTMLAlternative},
	{"attach-1mb", Attach1MB},
	{"multi-20mb", Multi20MB},
	{"nested-50", Nested50},
}

// ProxyShapes are the message sizes of the proxy throughput runs (issue 6).
var ProxyShapes = []Shape{
	{"2k-text", SmallText},
	{"100k-html-image", HTML100KImage},
	{"1m-pdf", PDF1MB},
}

// Lookup returns the shape called name from either list.
func Lookup(name string) (Shape, bool) {
	for _, l := range [][]Shape{ParserShapes, ProxyShapes} {
		for _, s := range l {
			if s.Name == name {
				return s, true
			}
		}
	}
	return Shape{}, false
}

var words = strings.Fields(`the quarterly report attached invoice meeting agenda please review
numbers shipment delivery schedule customer account balance payment reference thanks regards
project update draft final version office tomorrow morning afternoon budget forecast team
confirm order details contract signed scanned copy below above note important`)

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6d61696c67617465)) }

// prose returns about n bytes of word text wrapped at 72 columns, LF line ends.
func prose(r *rand.Rand, n int) string {
	var b strings.Builder
	col := 0
	for b.Len() < n {
		w := words[r.IntN(len(words))]
		if col+len(w)+1 > 72 {
			b.WriteByte('\n')
			col = 0
		} else if col > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteByte('\n')
	return b.String()
}

func randBytes(r *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			p[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		p[i] = byte(r.Uint32())
	}
	return p
}

// b64 encodes p in 76-column lines with LF line ends.
func b64(p []byte) string {
	enc := base64.StdEncoding.EncodeToString(p)
	var b strings.Builder
	b.Grow(len(enc) + len(enc)/76 + 1)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteByte('\n')
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteByte('\n')
	return b.String()
}

func qp(s string) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	// quotedprintable writes CRLF; keep LF like the rest, CRLF is applied last.
	return strings.ReplaceAll(b.String(), "\r\n", "\n")
}

func header(subject, ctype string) string {
	return "Return-Path: <alice@example.org>\n" +
		"Received: from client.example.org (client.example.org [192.0.2.10])\n\tby mx.example.net with ESMTP id 4A1B2C3D; Mon, 2 Nov 2026 09:30:00 +0000\n" +
		"From: Alice Example <alice@example.org>\n" +
		"To: Bob Example <bob@example.net>\n" +
		"Subject: " + subject + "\n" +
		"Date: Mon, 2 Nov 2026 09:30:00 +0000\n" +
		"Message-ID: <" + strings.ReplaceAll(strings.ToLower(subject), " ", "-") + "@example.org>\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: " + ctype + "\n"
}

// crlf turns the LF text into the CRLF form a message has on the wire.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// SmallText is a plain text message of about 2 KB.
func SmallText() []byte {
	r := rng(1)
	h := header("Small text", "text/plain; charset=us-ascii") + "Content-Transfer-Encoding: 7bit\n\n"
	return crlf(h + prose(r, 2048-len(h)-1))
}

func htmlOf(r *rand.Rand, n int, img string) string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Newsletter</title>\n" +
		"<style>body{font-family:Arial,sans-serif;color:#333}td{padding:4px}</style></head><body>\n")
	if img != "" {
		b.WriteString(`<p><img src="cid:` + img + `" alt="logo" width="600" height="200"></p>` + "\n")
	}
	for b.Len() < n {
		b.WriteString("<table><tr><td style=\"font-size:14px\">")
		b.WriteString(strings.TrimSpace(prose(r, 200)))
		b.WriteString("</td><td><a href=\"https://www.example.org/track?id=")
		fmt.Fprintf(&b, "%08x", r.Uint32())
		b.WriteString("\">Read more &rarr;</a></td></tr></table>\n")
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// HTMLAlternative is multipart/alternative: text/plain (quoted-printable)
// and text/html (quoted-printable), about 12 KB.
func HTMLAlternative() []byte {
	r := rng(2)
	const bd = "alt-boundary-7Q2x"
	s := header("HTML alternative", "multipart/alternative; boundary=\""+bd+"\"") + "\n" +
		"--" + bd + "\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
		qp(prose(r, 3000)) +
		"--" + bd + "\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
		qp(htmlOf(r, 8000, "")) +
		"--" + bd + "--\n"
	return crlf(s)
}

func attachPart(bd, ctype, name string, body []byte) string {
	return "--" + bd + "\nContent-Type: " + ctype + "; name=\"" + name + "\"\n" +
		"Content-Disposition: attachment; filename=\"" + name + "\"\n" +
		"Content-Transfer-Encoding: base64\n\n" + b64(body)
}

// Attach1MB is text plus one 1 MiB binary attachment in base64.
func Attach1MB() []byte {
	r := rng(3)
	const bd = "mixed-boundary-1M"
	s := header("One attachment", "multipart/mixed; boundary=\""+bd+"\"") + "\n" +
		"--" + bd + "\nContent-Type: text/plain; charset=us-ascii\n\n" + prose(r, 600) +
		attachPart(bd, "application/octet-stream", "data.bin", randBytes(r, 1<<20)) +
		"--" + bd + "--\n"
	return crlf(s)
}

// pdfLike returns n bytes that start and end like a PDF, with binary
// stream content in between.
func pdfLike(r *rand.Rand, n int) []byte {
	head := []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" +
		"4 0 obj\n<< /Length " + fmt.Sprint(n) + " /Filter /FlateDecode >>\nstream\n")
	tail := []byte("\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
	p := randBytes(r, n)
	copy(p, head)
	copy(p[n-len(tail):], tail)
	return p
}

// Multi20MB is text plus five attachments of 3 MiB each (about 20 MiB of
// base64 on the wire).
func Multi20MB() []byte {
	r := rng(4)
	const bd = "mixed-boundary-20M"
	var b strings.Builder
	b.WriteString(header("Several attachments", "multipart/mixed; boundary=\""+bd+"\"") + "\n")
	b.WriteString("--" + bd + "\nContent-Type: text/plain; charset=us-ascii\n\n" + prose(r, 1000))
	for i := 0; i < 5; i++ {
		if i%2 == 0 {
			b.WriteString(attachPart(bd, "application/pdf", fmt.Sprintf("report-%d.pdf", i), pdfLike(r, 3<<20)))
		} else {
			b.WriteString(attachPart(bd, "application/octet-stream", fmt.Sprintf("blob-%d.bin", i), randBytes(r, 3<<20)))
		}
	}
	b.WriteString("--" + bd + "--\n")
	return crlf(b.String())
}

// NestedDepth is the nesting of Nested50.
const NestedDepth = 50

// Nested50 nests multipart/mixed 50 levels deep, each level holding a short
// text leaf before the next level, the innermost a base64 leaf.
func Nested50() []byte {
	r := rng(5)
	var b strings.Builder
	b.WriteString(header("Deeply nested", "multipart/mixed; boundary=\"b0\"") + "\n")
	for i := 0; i < NestedDepth; i++ {
		fmt.Fprintf(&b, "--b%d\nContent-Type: text/plain; charset=us-ascii\n\n%s", i, prose(r, 120))
		if i < NestedDepth-1 {
			fmt.Fprintf(&b, "--b%d\nContent-Type: multipart/mixed; boundary=\"b%d\"\n\n", i, i+1)
		} else {
			fmt.Fprintf(&b, "--b%d\nContent-Type: application/octet-stream; name=\"deep.bin\"\nContent-Transfer-Encoding: base64\n\n%s", i, b64(randBytes(r, 4096)))
		}
	}
	for i := NestedDepth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\n", i)
	}
	return crlf(b.String())
}

// HTML100KImage is multipart/related: a text/html part (quoted-printable)
// with an inline PNG-like image it references, about 100 KB, wrapped in
// multipart/alternative with a text part.
func HTML100KImage() []byte {
	r := rng(6)
	png := randBytes(r, 40<<10)
	copy(png, "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	s := header("Newsletter with image", "multipart/alternative; boundary=\"alt-100k\"") + "\n" +
		"--alt-100k\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
		qp(prose(r, 6000)) +
		"--alt-100k\nContent-Type: multipart/related; boundary=\"rel-100k\"\n\n" +
		"--rel-100k\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
		qp(htmlOf(r, 38000, "logo@example.org")) +
		"--rel-100k\nContent-Type: image/png; name=\"logo.png\"\nContent-ID: <logo@example.org>\n" +
		"Content-Disposition: inline; filename=\"logo.png\"\nContent-Transfer-Encoding: base64\n\n" + b64(png) +
		"--rel-100k--\n--alt-100k--\n"
	return crlf(s)
}

// PDF1MB is a short text with a PDF-like attachment, about 1 MB on the wire.
func PDF1MB() []byte {
	r := rng(7)
	const bd = "mixed-pdf-1m"
	s := header("Signed contract", "multipart/mixed; boundary=\""+bd+"\"") + "\n" +
		"--" + bd + "\nContent-Type: text/plain; charset=us-ascii\n\n" + prose(r, 800) +
		attachPart(bd, "application/pdf", "contract.pdf", pdfLike(r, 750<<10)) +
		"--" + bd + "--\n"
	return crlf(s)
}
