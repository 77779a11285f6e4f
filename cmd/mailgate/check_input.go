package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// chkInput is one message found under a PATH argument: name is what reports
// show, rel its slash path under --out, read returns its raw bytes.
type chkInput struct {
	name, rel string
	read      func() ([]byte, error)
	// inBox: one message of an mbox or a Maildir, whose reports add its
	// Message-ID to the name (position or file name alone do not say
	// which message it is).
	inBox bool
}

// chkSkipped collects the files a directory walk passed over, by reason,
// so check can say what it did not read (and a user can name a file to
// check it anyway).
type chkSkipped struct {
	n       int
	reasons map[string][]string // reason → paths
}

func (s *chkSkipped) add(path, reason string) {
	if s.reasons == nil {
		s.reasons = map[string][]string{}
	}
	s.n++
	s.reasons[reason] = append(s.reasons[reason], path)
}

// write prints one line per reason with a few of the files.
func (s *chkSkipped) write(w io.Writer) {
	if s.n == 0 {
		return
	}
	fmt.Fprintf(w, "skipped %s (name a file to check it anyway):\n", plural(s.n, "file"))
	for _, r := range chkSortedKeys(s.reasons) {
		paths := s.reasons[r]
		ex := paths
		if len(ex) > 3 {
			ex = ex[:3]
		}
		more := ""
		if len(paths) > len(ex) {
			more = ", ..."
		}
		fmt.Fprintf(w, "  %d %s: %s%s\n", len(paths), r, strings.Join(ex, ", "), more)
	}
}

// The reasons a directory walk skips a file.
const (
	skipHidden    = "hidden (name starts with a dot)"
	skipNotFile   = "not a regular file"
	skipEmpty     = "empty"
	skipNoHeader  = "not a message: the first line is not a header field"
	skipNoCommon  = "not a message: no From, To, Subject, Date, Received, Message-ID, MIME-Version or Content-Type field in its first 4 KiB"
	skipTmp       = "in a Maildir's tmp/ (delivery in progress)"
	stdinName     = "-"
	stdinRelative = "stdin.eml"
)

// outRel is where a PATH argument's messages go under --out: the path as
// given on the command line (docs/DESIGN.md "Wave 2 contract"), kept
// inside the directory: a leading "/" and ".." elements are dropped.
func outRel(path string) string {
	var keep []string
	for _, e := range strings.Split(filepath.ToSlash(filepath.Clean(path)), "/") {
		if e != "" && e != "." && e != ".." {
			keep = append(keep, e)
		}
	}
	if len(keep) == 0 {
		return "."
	}
	return strings.Join(keep, "/")
}

// chkWalkInputs finds the messages under path and hands each to fn, in a
// stable order: a file (a message, or an mbox when it starts with "From "),
// a Maildir (cur/ and new/), or a directory searched recursively for .eml
// files, other files that start like a message, mbox files and Maildirs. Unreadable files and directories are
// reported to fail and skipped.
func chkWalkInputs(path string, fn func(chkInput), fail func(error), skipped *chkSkipped) {
	if path == stdinName {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			fail(fmt.Errorf("reading standard input: %w", err))
			return
		}
		chkBytesInputs(data, stdinName, stdinRelative, fn, fail)
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		fail(err)
		return
	}
	base := outRel(path)
	if !fi.IsDir() {
		chkFileInputs(path, base, fn, fail, true, false)
		return
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fail(err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(path, p)
		rel = filepath.ToSlash(filepath.Join(base, rel))
		if d.IsDir() {
			if p != path && strings.HasPrefix(d.Name(), ".") && !chkIsMaildir(p) {
				return fs.SkipDir
			}
			if d.Name() == "tmp" && chkIsMaildir(filepath.Dir(p)) {
				if ents, err := os.ReadDir(p); err == nil {
					for _, e := range ents {
						skipped.add(filepath.Join(p, e.Name()), skipTmp)
					}
				}
				return fs.SkipDir // RFC-less but universal: tmp/ holds deliveries in progress
			}
			return nil
		}
		switch {
		case strings.HasPrefix(d.Name(), "."):
			skipped.add(p, skipHidden)
			return nil
		case !d.Type().IsRegular():
			skipped.add(p, skipNotFile)
			return nil
		}
		inMaildir := chkIsMaildir(filepath.Dir(filepath.Dir(p))) &&
			(filepath.Base(filepath.Dir(p)) == "cur" || filepath.Base(filepath.Dir(p)) == "new")
		if reason := chkFileInputs(p, rel, fn, fail, inMaildir || strings.EqualFold(filepath.Ext(p), ".eml"), inMaildir); reason != "" {
			skipped.add(p, reason)
		}
		return nil
	})
	if err != nil {
		fail(err)
	}
}

// chkIsMaildir reports whether dir has cur/ and new/ subdirectories.
func chkIsMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// chkFileInputs hands over one file: an mbox (it starts with a "From " line)
// message by message, else, when whole is true, the file as one message.
// A UTF-8 byte-order mark before either is passed over. It returns why it
// skipped the file, or "".
func chkFileInputs(path, rel string, fn func(chkInput), fail func(error), whole, inMaildir bool) string {
	f, err := os.Open(path)
	if err != nil {
		fail(err)
		return ""
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	head, err := br.Peek(4096)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		fail(fmt.Errorf("%s: %w", path, err))
		return ""
	}
	if bytes.HasPrefix(head, utf8BOM) && bytes.HasPrefix(head[len(utf8BOM):], []byte("From ")) {
		br.Discard(len(utf8BOM))
		head = head[len(utf8BOM):]
	}
	if bytes.HasPrefix(head, []byte("From ")) {
		if err := chkSplitMbox(br, func(n int, msg []byte) {
			name := path + ":" + strconv.Itoa(n)
			fn(chkInput{name: name, rel: rel + "/" + strconv.Itoa(n) + ".eml", read: func() ([]byte, error) { return msg, nil }, inBox: true})
		}); err != nil {
			fail(fmt.Errorf("%s: %w", path, err))
		}
		return ""
	}
	if !whole {
		if reason := chkNotMessage(head); reason != "" {
			return reason
		}
	}
	fn(chkInput{name: path, rel: rel, inBox: inMaildir, read: func() ([]byte, error) {
		data, err := io.ReadAll(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return data, nil
	}})
	return ""
}

// chkBytesInputs hands over data read from standard input: an mbox
// message by message, else one message.
func chkBytesInputs(data []byte, name, rel string, fn func(chkInput), fail func(error)) {
	body := bytes.TrimPrefix(data, utf8BOM)
	if bytes.HasPrefix(body, []byte("From ")) {
		if err := chkSplitMbox(bufio.NewReader(bytes.NewReader(body)), func(n int, msg []byte) {
			fn(chkInput{name: name + ":" + strconv.Itoa(n), rel: "stdin/" + strconv.Itoa(n) + ".eml",
				read: func() ([]byte, error) { return msg, nil }, inBox: true})
		}); err != nil {
			fail(fmt.Errorf("standard input: %w", err))
		}
		return
	}
	fn(chkInput{name: name, rel: rel, read: func() ([]byte, error) { return data, nil }})
}

var utf8BOM = []byte("\xef\xbb\xbf")

// chkHeaderLine matches a header field line as mail software writes them,
// and the obsolete form with white space before the colon (RFC 5322 §4.5).
var chkHeaderLine = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*[ \t]*:`)

// chkCommonField matches, at a line start, a field nearly every message has.
var chkCommonField = regexp.MustCompile(`(?im)^(from|to|subject|date|received|message-id|mime-version|content-type|return-path|delivered-to)[ \t]*:`)

// chkNotMessage tells, in a directory walk, a message saved without
// the .eml extension (Maildir-less exports, test corpora: .msg, .txt, no
// extension) from other files: its first line (after a byte-order mark)
// is a header field and its first bytes hold a field every message has.
// It returns why head is not a message, or "".
func chkNotMessage(head []byte) string {
	head = bytes.TrimPrefix(head, utf8BOM)
	switch {
	case len(head) == 0:
		return skipEmpty
	case !chkHeaderLine.Match(head):
		return skipNoHeader
	case !chkCommonField.Match(head):
		return skipNoCommon
	}
	return ""
}

// chkSplitMbox reads an mbox (mboxo/mboxrd as most tools write it): a message
// starts at a "From " line at the start of the file or after an empty
// line; the From_ line itself and the empty line before the next one are
// not part of the message. ">From " quoting is left as it is, as Python's
// mailbox module does. Messages are numbered from 1.
func chkSplitMbox(br *bufio.Reader, fn func(n int, msg []byte)) error {
	var (
		cur     bytes.Buffer
		n       int
		inMsg   bool
		prevNL  = true // the previous line was empty (or start of file)
		pending []byte // an empty line held back: it may precede a From_ line
	)
	flush := func() {
		if inMsg {
			n++
			fn(n, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
		pending = nil
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			isEmpty := len(bytes.TrimRight(line, "\r\n")) == 0
			switch {
			case prevNL && bytes.HasPrefix(line, []byte("From ")):
				flush()
				inMsg = true
			default:
				if pending != nil {
					cur.Write(pending)
					pending = nil
				}
				if isEmpty {
					pending = bytes.Clone(line)
				} else {
					cur.Write(line)
				}
			}
			prevNL = isEmpty
		}
		if err == io.EOF {
			if pending != nil && cur.Len() == 0 {
				cur.Write(pending)
			}
			flush()
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// chkSortedKeys returns m's keys in order.
func chkSortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
