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

// maildirUpstream is the embedded delivery of the no-config default: each
// accepted message is written to tmp/, fsynced, and renamed into new/
// (the Maildir protocol; docs/DESIGN.md, "Configuration"). Files hold
// LF line endings, as Maildir readers expect.
type maildirUpstream struct {
	dir      string
	hostname string
}

var maildirSeq atomic.Uint64

type maildirConn struct {
	u     *maildirUpstream
	from  string
	rcpts int
}

var _ Upstream = (*maildirUpstream)(nil)

func (u *maildirUpstream) Open(ctx context.Context, ci Client) (Conn, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(u.dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
		}
	}
	return &maildirConn{u: u}, nil
}

func (c *maildirConn) Mail(ctx context.Context, from string, params []Param, ci Client) (Reply, error) {
	c.from, c.rcpts = from, 0
	return r(250, 2, 1, 0, "Ok"), nil
}

func (c *maildirConn) Rcpt(ctx context.Context, to string, params []Param) (Reply, error) {
	c.rcpts++
	return r(250, 2, 1, 5, "Ok"), nil
}

func (c *maildirConn) Data(ctx context.Context, msg io.Reader) (Reply, error) {
	if c.rcpts == 0 {
		return r(554, 5, 5, 1, "Error: no valid recipients"), nil
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	host := strings.NewReplacer("/", "\\057", ":", "\\072").Replace(c.u.hostname)
	name := fmt.Sprintf("%d.M%dP%dQ%d_%s.%s", time.Now().Unix(), time.Now().Nanosecond()/1000, os.Getpid(),
		maildirSeq.Add(1), hex.EncodeToString(rnd[:]), host)
	tmp := filepath.Join(c.u.dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Reply{}, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 64<<10)
	if _, err := io.Copy(&lfWriter{w: bw}, msg); err != nil {
		return Reply{}, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
	}
	if err := bw.Flush(); err != nil {
		return Reply{}, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
	}
	if err := f.Sync(); err != nil {
		return Reply{}, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
	}
	if err := f.Close(); err != nil {
		return Reply{}, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
	}
	if err := os.Rename(tmp, filepath.Join(c.u.dir, "new", name)); err != nil {
		return Reply{}, fmt.Errorf("%w: maildir: %v", ErrFailed, err)
	}
	ok = true
	fsync.Dir(filepath.Join(c.u.dir, "new"))
	c.rcpts = 0
	return r(250, 2, 0, 0, "Ok: queued as "+name), nil
}

func (c *maildirConn) Rset(ctx context.Context) (Reply, error) {
	c.from, c.rcpts = "", 0
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
