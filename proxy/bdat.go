package proxy

import (
	"context"
	"io"
	"mailgate/spool"
	"strconv"
	"strings"
	"time"
)

// bdatState collects the chunks of one BDAT transaction (RFC 3030). The
// whole message is spooled and checked, then parsed from the spool and
// sent upstream with DATA (DESIGN: "CHUNKING (BDAT) optional, converted to
// DATA upstream").
type bdatState struct {
	sp    *spool.Spool
	crlf  crlfChecker
	size  int64
	big   bool
	start time.Time
}

func (b *bdatState) close() { b.sp.Close() }

// crlfChecker is the line-ending check of BDAT content (which is not
// dot-stuffed): it records bare CR, bare LF and NUL, and in normalize mode
// rewrites bare CR and LF as CRLF. It is a pure function over chunks; a CR
// at the end of a chunk waits for the next one.
type crlfChecker struct {
	normalize           bool
	cr                  bool
	bareCR, bareLF, nul bool
}

func (c *crlfChecker) check(dst, src []byte) []byte {
	for _, b := range src {
		if c.cr {
			c.cr = false
			if b == '\n' {
				dst = append(dst, '\r', '\n')
				continue
			}
			c.bareCR = true
			dst = c.bare(dst, '\r')
		}
		switch b {
		case '\r':
			c.cr = true
			continue
		case '\n':
			c.bareLF = true
			dst = c.bare(dst, '\n')
			continue
		case 0:
			c.nul = true
		}
		dst = append(dst, b)
	}
	return dst
}

func (c *crlfChecker) bare(dst []byte, b byte) []byte {
	if c.normalize {
		return append(dst, '\r', '\n')
	}
	return append(dst, b)
}

// finish flushes a pending CR at the end of the message.
func (c *crlfChecker) finish(dst []byte) []byte {
	if c.cr {
		c.cr = false
		c.bareCR = true
		dst = c.bare(dst, '\r')
	}
	return dst
}

func (c *crlfChecker) err() error {
	switch {
	case c.nul:
		return errNUL
	case c.normalize:
		return nil
	case c.bareLF:
		return errBareLF
	case c.bareCR:
		return errBareCR
	}
	return nil
}

// cmdBdat handles BDAT size [LAST] (RFC 3030 §2). The chunk is always read,
// so the session stays in sync whatever the reply.
func (s *Session) cmdBdat(ctx context.Context, arg string) {
	fs := strings.Fields(arg)
	last := len(fs) == 2 && strings.EqualFold(fs[1], "LAST")
	n, err := strconv.ParseInt(firstField(fs), 10, 64)
	if err != nil || n < 0 || len(fs) > 2 || len(fs) == 2 && !last {
		// RFC 3030 §2: without a valid size the stream cannot be
		// followed: close.
		s.reply(r(421, 4, 5, 4, "Error: bad BDAT syntax, closing"))
		s.quit = true
		return
	}
	cfg := s.rt.cfg
	if s.tx != nil && s.tx.bdat == nil && len(s.tx.rcpts) > 0 {
		s.tx.bdat = &bdatState{sp: spool.New(cfg.SpoolDir, cfg.Limits.SpoolMemory, s.srv.spoolBudget),
			crlf: crlfChecker{normalize: cfg.BareNewline == "normalize"}, start: time.Now()}
	}
	var b *bdatState
	if s.tx != nil {
		b = s.tx.bdat
	}
	hard := time.Now().Add(cfg.Timeouts.DataTotal)
	if b != nil {
		hard = b.start.Add(cfg.Timeouts.DataTotal)
	}
	s.rd.idle, s.rd.hard = cfg.Timeouts.DataIdle, hard
	var sink io.Writer = io.Discard
	if b != nil {
		sink = &bdatWriter{b: b, max: cfg.Limits.MessageSize}
	}
	_, err = io.CopyN(sink, s.br, n)
	s.rd.idle, s.rd.hard = cfg.Timeouts.Command, time.Time{}
	if err != nil {
		if b != nil {
			s.upstreamRset(ctx)
		}
		s.readFailed(err, "reading BDAT")
		s.quit = true
		return
	}
	switch {
	case s.tx == nil:
		s.errReply(replyNeedMail)
		return
	case b == nil:
		s.errReply(replyNeedRcpt)
		return
	case !last:
		s.reply(r(250, 2, 0, 0, strconv.FormatInt(n, 10)+" octets received"))
		return
	}
	defer b.close()
	var tail []byte
	tail = b.crlf.finish(tail)
	if len(tail) > 0 {
		(&bdatWriter{b: b, max: cfg.Limits.MessageSize}).spool(tail)
	}
	timing := []any{"size", b.size, "read_ms", time.Since(b.start).Milliseconds(), "bdat", true}
	switch {
	case b.big:
		s.finishRefused(ctx, "too-big", replyTooBig, timing)
		return
	case b.crlf.err() != nil:
		s.log.Info("bad BDAT line endings", "err", b.crlf.err())
		s.finishRefused(ctx, "bad-data", replyBareNewline, timing)
		return
	case b.sp.Err() != nil:
		s.log.Error("spooling failed", "err", b.sp.Err())
		s.finishRefused(ctx, "local-error", replyLocalError, timing)
		return
	}
	msg, perr, ok := s.parse(b.sp, &timing)
	if !ok {
		s.finishRefused(ctx, "tempfail", replyLocalError, timing)
		return
	}
	s.decide(ctx, b.sp, msg, perr, timing)
}

func firstField(fs []string) string {
	if len(fs) == 0 {
		return ""
	}
	return fs[0]
}

// bdatWriter takes chunk bytes: line-ending check, size limit (counted,
// not stored, past the limit) and spool.
type bdatWriter struct {
	b   *bdatState
	max int64
	buf []byte
}

func (w *bdatWriter) Write(p []byte) (int, error) {
	w.buf = w.b.crlf.check(w.buf[:0], p)
	w.spool(w.buf)
	return len(p), nil
}

func (w *bdatWriter) spool(p []byte) {
	b := w.b
	b.size += int64(len(p))
	if w.max > 0 && b.size > w.max {
		b.big = true
	}
	if b.big {
		return
	}
	b.sp.Write(p) // a spool error is sticky and checked at LAST
}
