package mimeparse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The lowest leaf agreement with Python's email package (the corpus oracle)
// that the test accepts: counting Python's leaves as they are (raw), and
// counting a non-message message/* part (delivery-status field groups and
// the like) as the one leaf it is (see pyLeaves). Raise them when the parser
// gets closer; CONFORMANCE.md explains every remaining disagreement.
const (
	conformanceFloorRaw   = 0.965
	conformanceFloorParts = 0.98
)

// corpusDir is where the conformance corpus sits, ../shared/corpus from
// the repository root (docs/DEVELOPING.md, "Test data outside the
// repository").
const corpusDir = "../../shared/corpus"

type pyPart struct {
	Path          string     `json:"path"`
	ContentType   string     `json:"content_type"`
	CTE           *string    `json:"content_transfer_encoding"`
	Filename      *string    `json:"filename"`
	IsMultipart   bool       `json:"is_multipart"`
	PayloadSize   int64      `json:"payload_size"`
	PayloadSHA256 string     `json:"payload_sha256"`
	Defects       []pyDefect `json:"defects"`
	DecodeDefects []pyDefect `json:"decode_defects"`
	Children      []*pyPart  `json:"children"`
}

type pyDefect struct {
	Type string `json:"type"`
}

type pyMessage struct {
	Root     *pyPart      `json:"root"`
	Error    string       `json:"error"`
	Size     int64        `json:"size"`
	SHA256   string       `json:"sha256"`
	Messages []*pyMessage `json:"messages"`
}

// pyLeaves collects Python's leaves. With fieldGroups, a message/* part
// that is not an enclosed message (message/delivery-status, whose RFC 3464
// field groups Python turns into header-only "parts", message/partial,
// message/external-body, message/disposition-notification, which Python
// parses as messages whose body is empty) counts as one leaf: it is one in
// our tree and in IMAP. Python gives no payload for it, so only its type and
// filename are compared.
func pyLeaves(p *pyPart, out map[string]*pyPart, fieldGroups bool) {
	if p == nil {
		return
	}
	if fieldGroups && p.IsMultipart && strings.HasPrefix(p.ContentType, "message/") && !isMessageType(p.ContentType) {
		out[p.Path] = p
		return
	}
	if !p.IsMultipart {
		out[p.Path] = p
		return
	}
	for _, c := range p.Children {
		pyLeaves(c, out, fieldGroups)
	}
}

// pythonPaths gives each of our parts the path Python's oracle uses: the
// root "0", children "0.0", "0.1", ..., and the message enclosed in a
// message/rfc822 part as its child. Embedded leaves (uuencode, TNEF) have no
// Python counterpart and get "".
func pythonPaths(m *Message) map[string]*Part {
	out := map[string]*Part{}
	type open struct {
		path  string
		depth int
		n     int
	}
	var stack []*open
	for _, p := range m.Parts {
		if inBody(p) || underByContent(m, p) || p.Reading != "" {
			continue // not parts of Python's (primary) reading
		}
		for len(stack) > 0 && stack[len(stack)-1].depth >= p.Depth {
			stack = stack[:len(stack)-1]
		}
		path := "0"
		if len(stack) > 0 {
			top := stack[len(stack)-1]
			path = top.path + "." + strconv.Itoa(top.n)
			top.n++
		}
		out[path] = p
		stack = append(stack, &open{path: path, depth: p.Depth})
	}
	return out
}

// isLeaf reports whether p is a leaf of the MIME tree itself (not a
// container, not found inside a body).
func isLeaf(m *Message, p *Part) bool {
	return !p.IsMultipart && !hasChildren(m, p) && !inBody(p)
}

// inBody reports a part found inside a leaf's body: uuencode, TNEF, or a
// file carried by a document ("2.e1").
func inBody(p *Part) bool {
	return strings.Contains(p.Path, ".u") || strings.Contains(p.Path, ".t") || strings.Contains(p.Path, ".e")
}

// underByContent reports a part of a message read by its content (a leaf
// not declared as a message: DefectMessageByContent), which Python does
// not read.
func underByContent(m *Message, p *Part) bool {
	for _, q := range m.Parts {
		if strings.HasPrefix(p.Path, q.Path+".") && slices.Contains(q.Defects, DefectMessageByContent) {
			return true
		}
	}
	return false
}

// decodedOnly reports whether p exists only in decoded bytes: found in a
// body (uuencode, TNEF) or enclosed in a transfer-encoded message/rfc822.
// Its offsets are those of the part that holds it.
func decodedOnly(m *Message, p *Part) bool {
	if inBody(p) || p.Reading != "" {
		return true
	}
	for _, q := range m.Parts {
		if strings.HasPrefix(p.Path, q.Path+".") && (slices.Contains(q.Defects, DefectEncodedMessage) ||
			slices.Contains(q.Defects, DefectMessageByContent)) {
			return true
		}
	}
	return false
}

// hasChildren reports whether a part is a container in our tree.
func hasChildren(m *Message, p *Part) bool {
	for i, q := range m.Parts {
		if q == p {
			return i+1 < len(m.Parts) && m.Parts[i+1].Depth > p.Depth && !inBody(m.Parts[i+1]) && m.Parts[i+1].Reading == p.Reading &&
				!slices.Contains(p.Defects, DefectMessageByContent)
		}
	}
	return false
}

// splitMbox splits an mbox file the way Python's mailbox.mbox does: a
// message starts after each line beginning with "From "; a single empty
// line ("\n") before the next "From " line (or at the end) is not part of it.
func splitMbox(data []byte) [][]byte {
	var msgs [][]byte
	start := -1
	lastEmpty := false
	pos := 0
	for pos < len(data) {
		end := bytes.IndexByte(data[pos:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += pos + 1
		}
		line := data[pos:end]
		if bytes.HasPrefix(line, []byte("From ")) {
			if start >= 0 {
				stop := pos
				if lastEmpty {
					stop--
				}
				msgs = append(msgs, data[start:stop])
			}
			start = end
			lastEmpty = false
		} else {
			lastEmpty = string(line) == "\n"
		}
		pos = end
	}
	if start >= 0 {
		stop := len(data)
		if lastEmpty {
			stop--
		}
		msgs = append(msgs, data[start:stop])
	}
	return msgs
}

// knownDiffs lists every message with a leaf on which we disagree with
// Python, by category (CONFORMANCE.md explains each, and where Python's
// reading is the unsafe one). A disagreement elsewhere fails the test.
var knownDiffs = map[string]string{
	"cpython/msg_15.txt":                                                          "C nested boundary reuse",
	"cpython/msg_39.txt":                                                          "C nested boundary reuse",
	"mimekit/mbox/simple.mbox.txt[1]":                                             "C nested boundary reuse",
	"mimekit/mbox/simple.mbox.txt[2]":                                             "C nested boundary reuse",
	"stalwart-mail-parser/malformed/003.eml":                                      "C nested boundary reuse",
	"stalwart-mail-parser/malformed/005.eml":                                      "C nested boundary reuse",
	"stalwart-mail-parser/malformed/013.eml":                                      "C nested boundary reuse",
	"mikel-mail/emails/mime_emails/raw_email_with_binary_encoded.eml":             "D unquoted boundary with =",
	"mikel-mail/emails/mime_emails/raw_email_with_illegal_boundary.eml":           "D unquoted boundary with =",
	"mikel-mail/emails/plain_emails/raw_email_bad_time.eml":                       "D unquoted boundary with =",
	"enmime/mail/mime-bad-content-transfer-encoding.raw":                          "E base64 length 4n+1",
	"enmime/parts/extra-base64-character.raw":                                     "E base64 length 4n+1",
	"flanker/enclosed-broken-body.eml":                                            "E base64 length 4n+1",
	"php-mime-mail-parser/m0018":                                                  "E base64 length 4n+1",
	"enmime/mail/epilogue-sample.raw":                                             "F base64 after padding",
	"stalwart-mail-parser/thirdparty/002.eml":                                     "F base64 after padding",
	"mime4j/mimetools-testmsgs/twopart.msg":                                       "G transfer encoding with trailing space",
	"stalwart-mail-parser/thirdparty/003.eml":                                     "G transfer encoding with trailing space",
	"enmime/mail/mime-bad-content-type.raw":                                       "H invalid Content-Type",
	"enmime/mail/mime-blank-media-name.raw":                                       "H invalid Content-Type",
	"enmime/parts/ctype-invalid-characters.raw":                                   "H invalid Content-Type",
	"stalwart-mail-parser/malformed/017.eml":                                      "H invalid Content-Type",
	"mikel-mail/emails/rfc2822/example13.eml":                                     "I Name : value",
	"mime4j/testmsgs/obsolete.msg":                                                "I Name : value",
	"stalwart-mail-parser/malformed/019.eml":                                      "I Name : value",
	"mime4j/mimetools-testmsgs/multi-2evil.msg":                                   "J encoded word in parameter",
	"mikel-mail/emails/attachment_emails/attachment_with_base64_encoded_name.eml": "J encoded word in parameter",
	"mime4j/mimetools-testmsgs/russian.msg":                                       "J encoded word in parameter",
	"mime4j/testmsgs/russian-headers.msg":                                         "J encoded word in parameter",
	"mikel-mail/emails/attachment_emails/attachment_with_unquoted_name.eml":       "K unquoted value with space or /",
	"php-mime-mail-parser/issue133":                                               "K unquoted value with space or /",
	"mime4j/mimetools-testmsgs/multi-2gifs-base64.msg":                            "L encoded message/rfc822",
	"mime4j/testmsgs/bad-newlines-multiple-parts-base64.msg":                      "L encoded message/rfc822",
	"mime4j/testmsgs/base64encoded-rfc822message.msg":                             "L encoded message/rfc822",
	"mime4j/testmsgs/base64encoded-rfc822message-nested.msg":                      "L encoded message/rfc822",
	"php-mime-mail-parser/issue274.eml":                                           "L encoded message/rfc822",
	"stalwart-mail-parser/rfc/008.eml":                                            "L encoded message/rfc822",
	"mime4j/testmsgs/multipartemptypart.msg":                                      "M delimiter then close delimiter",
}

type leafDiff struct {
	file, path, what string
}

func TestConformance(t *testing.T) {
	if _, err := os.Stat(filepath.Join(corpusDir, "expected")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("corpus missing at %s (needed in CI): %v", corpusDir, err)
		}
		t.Skipf("corpus not found at %s: skipping the conformance test", corpusDir)
	}
	var files []string
	filepath.WalkDir(filepath.Join(corpusDir, "expected"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") && filepath.Base(path) != "_meta.json" {
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	if len(files) < 500 {
		t.Fatalf("only %d expected files", len(files))
	}
	var total, agree, totalRaw, agreeRaw int
	var diffs []leafDiff
	check := func(name string, raw []byte, want *pyMessage, translate bool) {
		if want.Error != "" || want.Root == nil {
			return
		}
		// Python has no part or depth limits; limits are checked by their
		// own tests, here the reading is compared.
		lim := DefaultLimits()
		lim.MimeParts, lim.MimeDepth = 1<<20, 1<<10
		msg, err := Parse(bytes.NewReader(raw), lim)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		checkOffsets(t, name, raw, msg)
		if translate && bytes.IndexByte(raw, '\r') >= 0 {
			// The oracle read the file with message_from_binary_file, which
			// wraps it in a TextIOWrapper with universal newlines: Python
			// parsed a copy with every CRLF and CR turned into LF. Parse the
			// same copy so that both readings start from the same bytes.
			msg, _ = Parse(bytes.NewReader(universalNewlines(raw)), lim)
		}
		ours := pythonPaths(msg)
		rawLeaves := map[string]*pyPart{}
		pyLeaves(want.Root, rawLeaves, false)
		for path, py := range rawLeaves {
			totalRaw++
			if compareLeaf(msg, ours[path], py) == "" {
				agreeRaw++
			}
		}
		leaves := map[string]*pyPart{}
		pyLeaves(want.Root, leaves, true)
		for path, py := range leaves {
			total++
			what := compareLeaf(msg, ours[path], py)
			if what == "" {
				agree++
				continue
			}
			diffs = append(diffs, leafDiff{name, path, what})
		}
	}
	for _, jf := range files {
		rel, _ := filepath.Rel(filepath.Join(corpusDir, "expected"), jf)
		rel = strings.TrimSuffix(rel, ".json")
		data, err := os.ReadFile(jf)
		if err != nil {
			t.Fatal(err)
		}
		var want pyMessage
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%s: %v", jf, err)
		}
		raw, err := os.ReadFile(filepath.Join(corpusDir, rel))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if want.Messages != nil {
			msgs := splitMbox(raw)
			if len(msgs) != len(want.Messages) {
				t.Errorf("%s: split into %d messages, Python %d", rel, len(msgs), len(want.Messages))
				continue
			}
			for i, w := range want.Messages {
				name := fmt.Sprintf("%s[%d]", rel, i)
				if int64(len(msgs[i])) != w.Size {
					t.Errorf("%s: %d bytes, Python %d", name, len(msgs[i]), w.Size)
				}
				check(name, msgs[i], w, false) // message_from_bytes: no newline translation
			}
			continue
		}
		check(rel, raw, &want, true)
	}
	rate := float64(agree) / float64(total)
	rateRaw := float64(agreeRaw) / float64(totalRaw)
	t.Logf("conformance: %d of %d leaf parts agree with Python's email package (%.2f%%); counting Python's delivery-status field groups as parts: %d of %d (%.2f%%)",
		agree, total, 100*rate, agreeRaw, totalRaw, 100*rateRaw)
	sort.Slice(diffs, func(i, j int) bool { return diffs[i].file+diffs[i].path < diffs[j].file+diffs[j].path })
	for _, d := range diffs {
		cat, ok := knownDiffs[d.file]
		if !ok {
			t.Errorf("differs (undocumented): %s %s: %s", d.file, d.path, d.what)
			continue
		}
		t.Logf("differs: %s %s: %s [%s]", d.file, d.path, d.what, cat)
	}
	if rate < conformanceFloorParts {
		t.Errorf("leaf agreement %.4f below the floor %.4f", rate, conformanceFloorParts)
	}
	if rateRaw < conformanceFloorRaw {
		t.Errorf("raw leaf agreement %.4f below the floor %.4f", rateRaw, conformanceFloorRaw)
	}
}

// compareLeaf returns "" when our part matches Python's leaf, else what differs.
func compareLeaf(m *Message, p *Part, py *pyPart) string {
	if p == nil {
		return "missing"
	}
	if hasChildren(m, p) {
		return "container:" + p.ContentType
	}
	if py.IsMultipart { // a message/* part Python parsed into field groups
		if p.ContentType != py.ContentType {
			return fmt.Sprintf("type %s vs %s", p.ContentType, py.ContentType)
		}
		if py.Filename != nil && p.Filename != *py.Filename {
			return fmt.Sprintf("filename %q vs %q", p.Filename, *py.Filename)
		}
		return ""
	}
	var d []string
	if p.ContentType != py.ContentType {
		d = append(d, fmt.Sprintf("type %s vs %s", p.ContentType, py.ContentType))
	}
	fn := ""
	if py.Filename != nil {
		fn = *py.Filename
	}
	if p.Filename != fn {
		d = append(d, fmt.Sprintf("filename %q vs %q", p.Filename, fn))
	}
	if p.Size != py.PayloadSize {
		d = append(d, fmt.Sprintf("size %d vs %d", p.Size, py.PayloadSize))
	} else if p.SHA256 != py.PayloadSHA256 {
		d = append(d, "sha256")
	}
	return strings.Join(d, "; ")
}

// checkOffsets asserts the offsets are ordered, inside the message, and
// that each field's bytes are where it says.
func checkOffsets(t *testing.T, name string, raw []byte, m *Message) {
	t.Helper()
	if m.Size != int64(len(raw)) {
		t.Errorf("%s: Size %d, want %d", name, m.Size, len(raw))
	}
	seen := map[string]bool{}
	for _, p := range m.Parts {
		if seen[p.Path] {
			t.Errorf("%s: two parts have path %s", name, p.Path)
		}
		seen[p.Path] = true
	}
	for _, p := range m.Parts {
		if !(0 <= p.HeaderOffset && p.HeaderOffset <= p.BodyOffset && p.BodyOffset <= p.EndOffset && p.EndOffset <= m.Size) {
			t.Errorf("%s: part %s offsets %d %d %d (size %d)", name, p.Path, p.HeaderOffset, p.BodyOffset, p.EndOffset, m.Size)
		}
		// An unencoded leaf's body is exactly its bytes between BodyOffset
		// and EndOffset.
		if isLeaf(m, p) && !decodedOnly(m, p) && !slices.Contains(p.Defects, DefectMissingStartBoundary) &&
			!slices.Contains(p.Defects, DefectEmptyMultipart) {
			switch p.TransferEncoding {
			case "", "7bit", "8bit", "binary":
				sum := sha256.Sum256(raw[p.BodyOffset:p.EndOffset])
				if hex.EncodeToString(sum[:]) != p.SHA256 {
					t.Errorf("%s: part %s: body bytes %d-%d do not hash to its SHA256", name, p.Path, p.BodyOffset, p.EndOffset)
				}
			}
		}
		for _, f := range p.Fields {
			if decodedOnly(m, p) {
				break
			}
			if f.Start < p.HeaderOffset || f.End > p.BodyOffset || !bytes.HasPrefix(raw[f.Start:f.End], []byte(f.Name)) {
				t.Errorf("%s: part %s field %s at %d-%d outside its header", name, p.Path, f.Name, f.Start, f.End)
			}
		}
	}
}

// universalNewlines turns CRLF and lone CR into LF, as Python's
// io.TextIOWrapper(newline=None) does on read.
func universalNewlines(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\r' {
			out = append(out, '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			continue
		}
		out = append(out, b[i])
	}
	return out
}
