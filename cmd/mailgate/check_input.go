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
}

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
func chkWalkInputs(path string, fn func(chkInput), fail func(error)) {
	fi, err := os.Stat(path)
	if err != nil {
		fail(err)
		return
	}
	base := outRel(path)
	if !fi.IsDir() {
		chkFileInputs(path, base, fn, fail, true)
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
				return fs.SkipDir // RFC-less but universal: tmp/ holds deliveries in progress
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		inMaildir := chkIsMaildir(filepath.Dir(filepath.Dir(p))) &&
			(filepath.Base(filepath.Dir(p)) == "cur" || filepath.Base(filepath.Dir(p)) == "new")
		chkFileInputs(p, rel, fn, fail, inMaildir || strings.EqualFold(filepath.Ext(p), ".eml"))
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
func chkFileInputs(path, rel string, fn func(chkInput), fail func(error), whole bool) {
	f, err := os.Open(path)
	if err != nil {
		fail(err)
		return
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	head, err := br.Peek(4096)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		fail(fmt.Errorf("%s: %w", path, err))
		return
	}
	if bytes.HasPrefix(head, []byte("From ")) {
		if err := chkSplitMbox(br, func(n int, msg []byte) {
			name := path + ":" + strconv.Itoa(n)
			fn(chkInput{name: name, rel: rel + "/" + strconv.Itoa(n) + ".eml", read: func() ([]byte, error) { return msg, nil }})
		}); err != nil {
			fail(fmt.Errorf("%s: %w", path, err))
		}
		return
	}
	if !whole && !chkLooksLikeMessage(head) {
		return
	}
	fn(chkInput{name: path, rel: rel, read: func() ([]byte, error) {
		data, err := io.ReadAll(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return data, nil
	}})
}

// chkHeaderLine matches a header field line as mail software writes them.
var chkHeaderLine = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*:`)

// chkCommonField matches, at a line start, a field nearly every message has.
var chkCommonField = regexp.MustCompile(`(?im)^(from|to|subject|date|received|message-id|mime-version|content-type|return-path|delivered-to):`)

// chkLooksLikeMessage tells, in a directory walk, a message saved without
// the .eml extension (Maildir-less exports, test corpora: .msg, .txt, no
// extension) from other files: its first line is a header field and its
// first bytes hold a field every message has.
func chkLooksLikeMessage(head []byte) bool {
	return chkHeaderLine.Match(head) && chkCommonField.Match(head)
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
