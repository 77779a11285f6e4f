// Package parser compares mailgate's mimeparse with other Go MIME parsers
// doing the same work: parse the message, decode the transfer encoding of
// every leaf part, and SHA-256-hash its decoded bytes.
package parser

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"

	gomessage "github.com/emersion/go-message"
	"github.com/jhillyerd/enmime"

	"mailgate/mimeparse"
)

// Leaf is what every parser reports for a leaf part: its decoded size and
// the hex SHA-256 of its decoded bytes.
type Leaf struct {
	Size   int64
	SHA256 string
}

// Parser is one contender.
type Parser struct {
	Name  string
	Parse func(raw []byte) ([]Leaf, error)
}

// Parsers are the contenders, mimeparse first.
var Parsers = []Parser{
	{"mimeparse", Mimeparse},
	{"stdlib", Stdlib},
	{"go-message", GoMessage},
	{"enmime", Enmime},
}

// ErrNotImplemented is returned by Mimeparse while mimeparse.Parse is still
// the placeholder.
var ErrNotImplemented = errors.New("mimeparse.Parse not implemented yet")

// MimeparseLimits are the limits Mimeparse uses: DefaultLimits, with the MIME
// depth raised so the 50-level shape is parsed to the bottom like the other
// parsers do (at the default depth of 20 it would stop early and do less
// work, which would flatter it).
func MimeparseLimits() mimeparse.Limits {
	lim := mimeparse.DefaultLimits()
	if lim.MimeDepth < 64 {
		lim.MimeDepth = 64
	}
	return lim
}

// Mimeparse parses with mailgate's mimeparse, which hashes every leaf itself.
func Mimeparse(raw []byte) ([]Leaf, error) {
	m, err := mimeparse.Parse(bytes.NewReader(raw), MimeparseLimits())
	if err != nil {
		if strings.Contains(err.Error(), "not implemented") {
			return nil, ErrNotImplemented
		}
		return nil, err
	}
	var out []Leaf
	for _, p := range m.Parts {
		if p.IsMultipart || p.ContentType == "message/rfc822" || p.ContentType == "message/global" {
			continue
		}
		out = append(out, Leaf{p.Size, p.SHA256})
	}
	return out, nil
}

// hashLeaf decodes body per the transfer encoding cte and hashes it.
func hashLeaf(body io.Reader, cte string, h *leafHasher) (Leaf, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body) // skips CR and LF
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	}
	return h.sum(body)
}

// leafHasher reuses one SHA-256 state and copy buffer across leaves, as a
// careful caller of each library would.
type leafHasher struct {
	buf []byte
}

func newLeafHasher() *leafHasher { return &leafHasher{buf: make([]byte, 32<<10)} }

func (h *leafHasher) sum(r io.Reader) (Leaf, error) {
	s := sha256.New()
	n, err := io.CopyBuffer(s, r, h.buf)
	if err != nil {
		return Leaf{}, err
	}
	return Leaf{n, hex.EncodeToString(s.Sum(nil))}, nil
}

// Stdlib parses with net/mail and mime/multipart, recursively, decoding
// base64 and quoted-printable with encoding/base64 and mime/quotedprintable.
func Stdlib(raw []byte) ([]Leaf, error) {
	m, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, err
	}
	var out []Leaf
	err = stdlibEntity(textproto.MIMEHeader(m.Header), m.Body, newLeafHasher(), &out, 0)
	return out, err
}

func stdlibEntity(h textproto.MIMEHeader, body io.Reader, lh *leafHasher, out *[]Leaf, depth int) error {
	if depth > 100 {
		return errors.New("stdlib: too deep")
	}
	ct := h.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || ct == "" {
		mt = "text/plain"
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart() // NextPart would decode QP behind our back
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := stdlibEntity(p.Header, p, lh, out, depth+1); err != nil {
				return err
			}
		}
	case mt == "message/rfc822" || mt == "message/global":
		m, err := mail.ReadMessage(bufio.NewReader(body))
		if err != nil {
			return err
		}
		return stdlibEntity(textproto.MIMEHeader(m.Header), m.Body, lh, out, depth+1)
	default:
		l, err := hashLeaf(body, h.Get("Content-Transfer-Encoding"), lh)
		if err != nil {
			return err
		}
		*out = append(*out, l)
		return nil
	}
}

// GoMessage parses with github.com/emersion/go-message, which decodes the
// transfer encoding itself (message.New); charsets are left as they are (no
// charset package imported), as for the other parsers.
func GoMessage(raw []byte) ([]Leaf, error) {
	e, err := gomessage.Read(bytes.NewReader(raw))
	if err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err) {
		return nil, err
	}
	var out []Leaf
	err = goMessageEntity(e, newLeafHasher(), &out, 0)
	return out, err
}

func goMessageEntity(e *gomessage.Entity, lh *leafHasher, out *[]Leaf, depth int) error {
	if depth > 100 {
		return errors.New("go-message: too deep")
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err) {
				return err
			}
			if err := goMessageEntity(p, lh, out, depth+1); err != nil {
				return err
			}
		}
	}
	mt, _, _ := e.Header.ContentType()
	if mt == "message/rfc822" || mt == "message/global" {
		inner, err := gomessage.Read(e.Body)
		if err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err) {
			return err
		}
		return goMessageEntity(inner, lh, out, depth+1)
	}
	l, err := lh.sum(e.Body)
	if err != nil {
		return err
	}
	*out = append(*out, l)
	return nil
}

// Enmime parses with github.com/jhillyerd/enmime's ReadParts, which decodes
// every part into memory (and text parts to UTF-8), then hashes each leaf's
// Content. ReadParts rather than ReadEnvelope: the envelope also renders
// HTML to text, work the others do not do.
func Enmime(raw []byte) ([]Leaf, error) {
	root, err := enmime.ReadParts(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	var out []Leaf
	var walk func(p *enmime.Part, depth int) error
	walk = func(p *enmime.Part, depth int) error {
		if depth > 200 {
			return errors.New("enmime: too deep")
		}
		if p.FirstChild == nil {
			sum := sha256.Sum256(p.Content)
			out = append(out, Leaf{int64(len(p.Content)), hex.EncodeToString(sum[:])})
			return nil
		}
		for c := p.FirstChild; c != nil; c = c.NextSibling {
			if err := walk(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// Raw is the ceiling: base64-decode a flat buffer (no line breaks) and
// SHA-256 the result. dst must hold base64.StdEncoding.DecodedLen(len(src)).
func Raw(src, dst []byte) ([32]byte, error) {
	n, err := base64.StdEncoding.Decode(dst, src)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(dst[:n]), nil
}

// FlatBase64 returns a base64 buffer of about n bytes, no line breaks.
func FlatBase64(n int) []byte {
	raw := make([]byte, n/4*3)
	for i := range raw {
		raw[i] = byte(i*131 + i>>7)
	}
	return []byte(base64.StdEncoding.EncodeToString(raw))
}

func (l Leaf) String() string { return fmt.Sprintf("%d:%s", l.Size, l.SHA256[:12]) }
