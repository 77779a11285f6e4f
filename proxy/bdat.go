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
// chunks go through the same line-ending and NUL checks as DATA (the dot
// scanner in chunked mode) into the spool; at LAST the message is decided
// like a DATA message (Session.message) and sent upstream with DATA
// (docs/DESIGN.md: "CHUNKING (BDAT) optional, converted to DATA upstream").
type bdatState struct {
	sp    *spool.Spool
	scan  dotScanner
	size  int64
	big   bool
	start time.Time
	limit int64 // limits.message_size
	buf   []byte
	tee   io.Writer // the lookups' message checks (lookups.go); nil: none
}

func (b *bdatState) close() { b.sp.Close() }

// Write takes chunk bytes: line-ending check, size limit (counted, not
// stored, past the limit) and spool.
func (b *bdatState) Write(p []byte) (int, error) {
	b.buf, _ = b.scan.scan(b.buf[:0], p)
	b.spool(b.buf)
	return len(p), nil
}

func (b *bdatState) spool(p []byte) {
	b.size += int64(len(p))
	if b.limit > 0 && b.size > b.limit {
		b.big = true
	}
	if b.big {
		return
	}
	b.sp.Write(p) // a spool error is sticky and checked at LAST
	if b.tee != nil {
		b.tee.Write(p) // DKIM and ARC see the bytes as they arrive
	}
}

// cmdBdat handles BDAT size [LAST] (RFC 3030 §2). The chunk is always read,
// so the session stays in sync whatever the reply.
func (s *Session) cmdBdat(ctx context.Context, arg string) outcome {
	fs := strings.Fields(arg)
	last := len(fs) == 2 && strings.EqualFold(fs[1], "LAST")
	n, err := strconv.ParseInt(firstField(fs), 10, 64)
	if err != nil || n < 0 || len(fs) > 2 || len(fs) == 2 && !last {
		// RFC 3030 §2: without a valid size the stream cannot be
		// followed: close.
		return outcome{reply: r(421, 4, 5, 4, "Error: bad BDAT syntax, closing"), quit: true}
	}
	cfg := s.rt.cfg
	if s.tx != nil && s.tx.bdat == nil && len(s.tx.rcpts) > 0 {
		s.tx.bdat = &bdatState{sp: spool.New(cfg.SpoolDir, cfg.Limits.SpoolMemory, s.srv.spoolBudget),
			scan: newChunkScanner(cfg.BareNewline == "normalize"), start: time.Now(), limit: cfg.Limits.MessageSize,
			tee: s.messageTee()}
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
		sink = b
	}
	_, err = io.CopyN(sink, s.br, n)
	s.rd.idle, s.rd.hard = cfg.Timeouts.Command, time.Time{}
	if err != nil {
		o := s.readFailed(err, "reading BDAT")
		o.rset, o.quit = b != nil, true
		return o
	}
	switch {
	case s.tx == nil:
		return fail(replyNeedMail)
	case b == nil:
		return fail(replyNeedRcpt)
	case !last:
		return say(r(250, 2, 0, 0, strconv.FormatInt(n, 10)+" octets received"))
	}
	defer b.close()
	if tail := b.scan.finish(nil); len(tail) > 0 {
		b.spool(tail)
	}
	timing := []any{"size", b.size, "read_ms", time.Since(b.start).Milliseconds(), "bdat", true}
	return s.message(ctx, b.sp, b.big, b.scan.err(), timing)
}

func firstField(fs []string) string {
	if len(fs) == 0 {
		return ""
	}
	return fs[0]
}
