package upstream

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mailgate/internal/fsync"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// RcptTemplate in a maildir: path stands for the recipient: maildir:DIR/{rcpt}
// gives every recipient a Maildir of its own (README "Configuration").
const RcptTemplate = "{rcpt}"

// maildirUpstream is the embedded delivery of the no-config default, a
// local delivery agent: for each recipient, the message with Return-Path,
// Delivered-To and a Received field prepended is written to tmp/, fsynced,
// renamed into new/, and new/ fsynced, before the 250 (the Maildir
// protocol; README "Configuration"). Files hold LF line endings, as
// Maildir readers (Dovecot, mutt, Postfix's own local delivery) expect.
type maildirUpstream struct {
	dir      string // may hold RcptTemplate
	hostname string
}

var maildirSeq atomic.Uint64

type maildirConn struct {
	u     *maildirUpstream
	from  string
	ci    Client
	rcpts []string
}

var _ Upstream = (*maildirUpstream)(nil)

func (u *maildirUpstream) Open(ctx context.Context, ci Client) (Conn, error) {
	if !strings.Contains(u.dir, RcptTemplate) {
		if err := makeMaildir(u.dir); err != nil {
			return nil, err
		}
	}
	return &maildirConn{u: u, ci: ci}, nil
}

func makeMaildir(dir string) error {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return fmt.Errorf("%w: maildir: %v", ErrFailed, err)
		}
	}
	return nil
}

func (c *maildirConn) Mail(ctx context.Context, from string, params []Param, ci Client) (Reply, error) {
	c.from, c.ci, c.rcpts = from, ci, nil
	return r(250, 2, 1, 0, "Ok"), nil
}

func (c *maildirConn) Rcpt(ctx context.Context, to string, params []Param) (Reply, error) {
	c.rcpts = append(c.rcpts, to)
	return r(250, 2, 1, 5, "Ok"), nil
}

// SanitizeRcpt turns a recipient address into one path element for the
// {rcpt} template: lower case; bytes other than letters, digits and
// "@._+=-" become "_" (so no "/", no control byte, no space); a "." at the
// start or after another "." becomes "_" (so no "." or ".."); at most 200
// bytes. The local part is chosen by whoever sends the mail.
func SanitizeRcpt(rcpt string) string {
	b := []byte(strings.ToLower(rcpt))
	if len(b) > 200 {
		b = b[:200]
	}
	for i, ch := range b {
		ok := ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || strings.IndexByte("@._+=-", ch) >= 0
		if !ok || ch == '.' && (i == 0 || b[i-1] == '.') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

func (c *maildirConn) Data(ctx context.Context, msg io.Reader) (Reply, error) {
	if len(c.rcpts) == 0 {
		return r(554, 5, 5, 1, "Error: no valid recipients"), nil
	}
	// The message is read once and written to every recipient's file:
	// the first file is the source of the others.
	var names []string
	var first string
	var skip int64
	for i, rcpt := range c.rcpts {
		dir := strings.ReplaceAll(c.u.dir, RcptTemplate, SanitizeRcpt(rcpt))
		if err := makeMaildir(dir); err != nil {
			return Reply{}, err
		}
		src, convert := msg, true
		if i > 0 {
			f, err := os.Open(first)
			if err != nil {
				return Reply{}, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
			}
			defer f.Close()
			if _, err := f.Seek(skip, io.SeekStart); err != nil {
				return Reply{}, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
			}
			src, convert = f, false
		}
		name, path, n, err := c.deliver(dir, rcpt, src, convert)
		if err != nil {
			return Reply{}, err
		}
		if i == 0 {
			first, skip = path, n
		}
		names = append(names, name)
	}
	c.rcpts = nil
	return r(250, 2, 0, 0, "Ok: queued as "+names[0]), nil
}

// deliver writes one recipient's copy into dir/tmp (CRLF turned into LF
// when convert is set), fsyncs it, renames it into dir/new and fsyncs
// dir/new. It returns the file's name and path, and the length of the
// fields it prepended.
func (c *maildirConn) deliver(dir, rcpt string, msg io.Reader, convert bool) (string, string, int64, error) {
	var rnd [6]byte
	rand.Read(rnd[:])
	host := strings.NewReplacer("/", "\\057", ":", "\\072").Replace(c.u.hostname)
	now := time.Now()
	name := fmt.Sprintf("%d.M%dP%dQ%d_%s.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(),
		maildirSeq.Add(1), hex.EncodeToString(rnd[:]), host)
	tmp := filepath.Join(dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", 0, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 64<<10)
	head := fmt.Sprintf("Return-Path: <%s>\nDelivered-To: %s\n%s", headerSafe(c.from), headerSafe(rcpt), c.received(rcpt, name, now))
	bw.WriteString(head)
	var dst io.Writer = bw
	if convert {
		dst = &lfWriter{w: bw}
	}
	_, err = io.Copy(dst, msg)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "new", name))
	}
	if err != nil {
		return "", "", 0, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
	}
	ok = true
	if err := fsync.Dir(filepath.Join(dir, "new")); err != nil {
		// The file is in new/, but a crash could lose its name: the
		// client must not be told it was delivered (DESIGN invariant 1).
		os.Remove(filepath.Join(dir, "new", name))
		return "", "", 0, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
	}
	return name, filepath.Join(dir, "new", name), int64(len(head)), nil
}

// received is the trace field (RFC 5321 §4.4) naming mailgate, on two
// lines.
func (c *maildirConn) received(rcpt, id string, now time.Time) string {
	helo := headerSafe(c.ci.Helo)
	if helo == "" {
		helo = "unknown"
	}
	addr := headerSafe(c.ci.Addr)
	proto := c.ci.Proto
	if proto == "" {
		proto = "SMTP"
	}
	return fmt.Sprintf("Received: from %s ([%s]) by %s (mailgate) with %s id %s\n\tfor <%s>; %s\n",
		helo, addr, headerSafe(c.u.hostname), headerSafe(proto), id, headerSafe(rcpt), now.Format(time.RFC1123Z))
}

// headerSafe keeps a value on its header line: control bytes become "?".
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func (c *maildirConn) Rset(ctx context.Context) (Reply, error) {
	c.from, c.rcpts = "", nil
	return r(250, 2, 0, 0, "Ok"), nil
}

func (c *maildirConn) Quit(ctx context.Context) {}
func (c *maildirConn) Close() error             { return nil }

// lfWriter turns CRLF into LF.
type lfWriter struct {
	w  io.Writer
	cr bool
}

func (l *lfWriter) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+1)
	for _, c := range p {
		if l.cr {
			l.cr = false
			if c != '\n' {
				out = append(out, '\r')
			}
		}
		if c == '\r' {
			l.cr = true
			continue
		}
		out = append(out, c)
	}
	if _, err := l.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
