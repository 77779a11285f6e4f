package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mailgate/internal/bounded"
	"mailgate/quarantine"
	"mailgate/spool"
	"slices"
	"time"

	"mailgate/mimeparse"
	"mailgate/rules"
)

// cmdData reads the message and applies the verdict (DESIGN "Data flow of
// one message"). The upstream's DATA starts only once mailgate has the whole
// message and its verdict.
func (s *Session) cmdData(ctx context.Context, arg string) {
	switch {
	case arg != "":
		s.errReply(replyBadSyntax)
		return
	case s.tx == nil:
		s.errReply(replyNeedMail)
		return
	case len(s.tx.rcpts) == 0:
		s.errReply(replyNeedRcpt)
		return
	case s.tx.bdat != nil:
		// RFC 3030 §3: DATA may not follow BDAT in a transaction.
		s.errReply(r(503, 5, 5, 1, "Error: DATA after BDAT"))
		return
	}
	s.reply(replyDataStart)
	if err := s.flushIfIdle(); err != nil {
		s.quit = true
		return
	}
	cfg := s.rt.cfg
	t0 := time.Now()
	s.rd.idle, s.rd.hard = cfg.Timeouts.DataIdle, t0.Add(cfg.Timeouts.DataTotal)

	sp := spool.New(cfg.SpoolDir, cfg.Limits.SpoolMemory, s.srv.spoolBudget)
	defer sp.Close()
	dr := newDotReader(s.br, cfg.BareNewline == "normalize")
	lr := &limitReader{r: dr, n: cfg.Limits.MessageSize}
	tee := io.TeeReader(lr, sp)

	io.Copy(io.Discard, tee) // the message, spooled
	derr := dr.drain()       // on to the real end of data, whatever happened
	s.rd.idle, s.rd.hard = cfg.Timeouts.Command, time.Time{}
	readDur := time.Since(t0)
	timing := []any{"size", sp.Size(), "read_ms", readDur.Milliseconds()}

	switch {
	case !dr.ended():
		// The client went away or timed out: nothing is relayed.
		s.upstreamRset(ctx)
		if errors.Is(derr, errTooBig) {
			derr = nil
		}
		s.readFailed(derr, "reading DATA")
		s.quit = true
		return
	case lr.exceeded:
		s.finishRefused(ctx, "too-big", replyTooBig, timing)
		return
	case derr != nil:
		s.log.Info("bad DATA line endings", "err", derr)
		s.finishRefused(ctx, "bad-data", replyBareNewline, timing)
		return
	case sp.Err() != nil:
		s.log.Error("spooling failed", "err", sp.Err())
		s.finishRefused(ctx, "local-error", replyLocalError, timing)
		return
	}
	msg, perr, ok := s.parse(sp, &timing)
	if !ok {
		s.finishRefused(ctx, "tempfail", replyLocalError, timing)
		return
	}
	s.decide(ctx, sp, msg, perr, timing)
}

// parse parses the spooled message when the transaction needs it, for at
// most timeouts.inspect (bounded.go); false past it, or when too many
// abandoned parses still run: the message is then tempfailed, never
// passed. The parse reads the spool, not the client, so that it can be
// abandoned: an abandoned parse keeps the spool until it ends.
func (s *Session) parse(sp *spool.Spool, timing *[]any) (*mimeparse.Message, error, bool) {
	if !s.needParse() {
		return nil, nil, true
	}
	var msg *mimeparse.Message
	var perr error
	raw, err := sp.Reader()
	if err != nil {
		return nil, err, true
	}
	lim := s.mimeLimits()
	t0 := time.Now()
	release := sp.Share()
	timeout := s.rt.cfg.Timeouts.Inspect
	err = s.srv.work.Run(timeout, func() {
		defer release()
		msg, perr = mimeparse.Parse(raw, lim)
	})
	*timing = append(*timing, "parse_ms", time.Since(t0).Milliseconds())
	switch {
	case err == nil:
		return msg, perr, true
	case errors.Is(err, bounded.ErrTimeout):
		s.log.Warn("parse and inspection past timeouts.inspect: tempfailed", "timeout", "timeouts.inspect", "limit", timeout.String())
	case errors.Is(err, bounded.ErrBusy):
		release()
		s.log.Warn("tempfailed: too many parses or evaluations past their timeout still running", "timeout", "timeouts.inspect", "running", s.srv.work.Abandoned())
	default:
		s.log.Error("parse failed", "err", err)
	}
	return nil, nil, false
}

// runRules reports whether the data stage's rules run for this
// transaction.
func (s *Session) runRules() bool {
	return s.eval != nil && !s.tx.accepted && s.tx.final == nil
}

// needParse reports whether the message must be parsed: for the data
// stage's rules, or for edits made before an accept (they need the parsed
// message's offsets).
func (s *Session) needParse() bool {
	return s.runRules() || s.rt.engine != nil && s.tx.final == nil && !s.tx.edits.Empty()
}

// decide evaluates the data stage on a message read whole and spooled, and
// applies the verdict.
func (s *Session) decide(ctx context.Context, sp *spool.Spool, msg *mimeparse.Message, perr error, timing []any) {
	s.srv.metrics.messageSize.Observe(float64(sp.Size()))
	if msg != nil && len(msg.Defects) > 0 {
		// The parser's findings (a closed vocabulary, each once), so a
		// refusal by a rule such as fail-closed-limits says which limit.
		timing = append(timing, "defects", msg.Defects)
	}
	v := rules.Verdict{Action: rules.ActionContinue}
	switch {
	case s.tx.final != nil:
		v = *s.tx.final
	case s.needParse() && (msg == nil || perr != nil):
		// A parse that failed other than by a read error is a bug:
		// fail closed, the client retries.
		s.log.Error("parse failed", "err", perr)
		s.finishRefused(ctx, "local-error", replyLocalError, timing)
		return
	case s.runRules():
		env := s.envelope(int(sp.Size()))
		t1 := time.Now()
		v = s.evaluate(rules.StageData, &rules.Facts{Client: s.client, Envelope: env, Msg: msg})
		timing = append(timing, "policy_ms", time.Since(t1).Milliseconds())
	}
	mergeEdits(&s.tx.edits, &v.Edits)
	switch v.Action {
	case rules.ActionReject, rules.ActionTempfail:
		s.finishRefused(ctx, string(v.Action), verdictReply(v), timing)
	case rules.ActionDiscard:
		s.upstreamRset(ctx)
		s.finish("discard", r(250, 2, 0, 0, "Ok"), timing)
	case rules.ActionQuarantine:
		s.applyQuarantine(ctx, sp, v, timing)
	default:
		s.relay(ctx, sp, msg, v, timing)
	}
}

func (s *Session) mimeLimits() mimeparse.Limits {
	l := mimeparse.DefaultLimits()
	c := s.rt.cfg.Limits
	l.MimeDepth, l.MimeParts, l.HeaderBytes, l.LineLength = c.MimeDepth, c.MimeParts, int(c.HeaderBytes), int(c.LineLength)
	l.ArchiveDepth, l.ArchiveEntries, l.InspectSpill = c.ArchiveDepth, c.ArchiveEntries, c.InspectSpill
	l.DecompressedBytes, l.ArchiveDict = c.DecompressedBytes, c.ArchiveDict
	l.SpillDir = s.rt.cfg.SpoolDir
	return l
}

// spoolSHA256 is the hex SHA-256 of the spooled message.
func spoolSHA256(sp *spool.Spool) (string, error) {
	raw, err := sp.Reader()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, raw); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// finishRefused answers a refused message and resets the upstream.
func (s *Session) finishRefused(ctx context.Context, verdict string, rp Reply, timing []any) {
	s.upstreamRset(ctx)
	s.finish(verdict, rp, timing)
}

func (s *Session) finish(verdict string, rp Reply, timing []any) {
	s.reply(rp)
	s.endTx(verdict, rp, timing)
}

func (s *Session) applyQuarantine(ctx context.Context, sp *spool.Spool, v rules.Verdict, timing []any) {
	// The message's SHA-256 names the quarantine files. It is computed
	// here, from the spool, rather than while reading DATA: quarantine is
	// rare, and every other message would pay for a second pass over it.
	sum, err := spoolSHA256(sp)
	if err == nil {
		var raw io.Reader
		if raw, err = sp.Reader(); err == nil {
			tx := s.tx
			rec := quarantine.Record{
				Time: time.Now().UTC(), Session: s.id, ClientIP: s.client.IP, HELO: s.client.HELO,
				From: tx.from, Rule: v.Rule, Rules: tx.rules, Size: sp.Size(),
			}
			for _, r := range tx.rcpts {
				rec.Rcpts = append(rec.Rcpts, r.addr)
			}
			err = quarantine.Save(s.rt.cfg.QuarantineDir, raw, sum, rec)
		}
	}
	if err != nil {
		s.log.Error("quarantine failed", "err", err)
		s.finishRefused(ctx, "local-error", replyLocalError, timing)
		return
	}
	s.upstreamRset(ctx)
	s.finish("quarantine", r(250, 2, 0, 0, "Ok"), append(timing, "quarantine", sum))
}

// relay sends the (possibly rewritten) message upstream and relays the
// upstream's reply to the final dot (DESIGN invariant 1).
func (s *Session) relay(ctx context.Context, sp *spool.Spool, msg *mimeparse.Message, v rules.Verdict, timing []any) {
	ed := &s.tx.edits
	body, err := sp.Reader()
	if err != nil {
		s.log.Error("reading spool", "err", err)
		s.finishRefused(ctx, "local-error", replyLocalError, timing)
		return
	}
	if s.up == nil {
		s.finish("upstream-failed", replyUpstreamFailed, timing)
		return
	}
	if rp, ok := s.applyRcptEdits(ctx, ed); !ok {
		s.finish("upstream-refused", rp, timing)
		return
	}
	if len(s.tx.rcpts) == 0 {
		// Every recipient was removed: nothing to deliver.
		s.upstreamRset(ctx)
		s.finish("discard", r(250, 2, 0, 0, "Ok"), timing)
		return
	}
	var rw *rewriter
	if !ed.Empty() && s.rt.engine != nil && msg != nil {
		rw = s.startRewrite(body, msg, ed)
		body = rw.pr
		timing = append(timing, "rewritten", true)
	}
	t1 := time.Now()
	rp, err := s.up.Data(ctx, body)
	timing = append(timing, "upstream_ms", time.Since(t1).Milliseconds())
	if rerr := rw.wait(); rerr != nil && err != nil {
		// The upstream got part of the message and no end of data: it
		// drops it (invariant 1); so does mailgate's connection to it.
		s.log.Error("rewriting failed", "err", rerr)
		s.closeUpstream(true)
		s.finish("local-error", replyLocalError, timing)
		return
	}
	if err != nil {
		s.upstreamFailed(err)
		s.finish("upstream-failed", replyUpstreamFailed, timing)
		return
	}
	s.tx.upstream = rp
	verdict := "accept"
	if rp.Code/100 != 2 {
		verdict = "upstream-refused"
	}
	s.finish(verdict, rp, timing)
}

// rewriter streams the rewritten message (the spool with the verdict's
// edits spliced in) to the upstream as it is produced, instead of spooling
// a second copy first. A rewrite that fails makes the upstream's reader
// fail, so the upstream never gets the end of data.
type rewriter struct {
	pr   *io.PipeReader
	done chan struct{}
	err  error // Rewrite's, valid after done
}

func (s *Session) startRewrite(body io.Reader, msg *mimeparse.Message, ed *rules.Edits) *rewriter {
	pr, pw := io.Pipe()
	rw := &rewriter{pr: pr, done: make(chan struct{})}
	eng := s.rt.engine
	go func() {
		defer close(rw.done)
		_, rw.err = eng.Rewrite(pw, body, msg, ed)
		pw.CloseWithError(rw.err) // nil: the reader sees EOF
	}()
	return rw
}

// wait stops the rewrite if the upstream did not read it all, and returns
// its error; nil for a nil rewriter or one stopped by the upstream side.
func (rw *rewriter) wait() error {
	if rw == nil {
		return nil
	}
	rw.pr.Close()
	<-rw.done
	if errors.Is(rw.err, io.ErrClosedPipe) {
		return nil
	}
	return rw.err
}

// applyRcptEdits adds recipients (extra RCPTs before DATA) and removes
// recipients (RSET, then MAIL and the remaining RCPTs replayed), as
// DESIGN "The SMTP side" says.
func (s *Session) applyRcptEdits(ctx context.Context, ed *rules.Edits) (Reply, bool) {
	tx := s.tx
	if len(ed.RcptRemove) > 0 {
		var keep []rcptTo
		for _, rc := range tx.rcpts {
			if !slices.Contains(ed.RcptRemove, rc.addr) {
				keep = append(keep, rc)
			}
		}
		if len(keep) != len(tx.rcpts) {
			tx.rcpts = keep
			if len(keep) == 0 {
				return Reply{}, true
			}
			if rp, err := s.up.Rset(ctx); err != nil || rp.Code/100 != 2 {
				return s.replayFailed(err, rp)
			}
			if rp, err := s.up.Mail(ctx, tx.from, tx.params, s.clientInfo()); err != nil || rp.Code/100 != 2 {
				return s.replayFailed(err, rp)
			}
			for _, rc := range keep {
				if rp, err := s.up.Rcpt(ctx, rc.addr, rc.params); err != nil || rp.Code/100 != 2 {
					return s.replayFailed(err, rp)
				}
			}
		}
	}
	for _, a := range ed.RcptAdd {
		if slices.ContainsFunc(tx.rcpts, func(rc rcptTo) bool { return rc.addr == a }) {
			continue
		}
		rp, err := s.up.Rcpt(ctx, a, nil)
		if err != nil {
			return s.replayFailed(err, rp)
		}
		if rp.Code/100 == 2 {
			tx.rcpts = append(tx.rcpts, rcptTo{addr: a})
		} else {
			s.log.Warn("added recipient refused by upstream", "rcpt", a, "reply", rp.String())
		}
	}
	return Reply{}, true
}

// replayFailed turns a failed recipient edit into a temporary failure: the
// message must not go to a recipient set the policy did not ask for.
func (s *Session) replayFailed(err error, rp Reply) (Reply, bool) {
	if err != nil {
		s.upstreamFailed(err)
	} else {
		s.log.Warn("recipient replay refused by upstream", "reply", rp.String())
		s.upstreamRset(context.Background())
	}
	return replyUpstreamFailed, false
}
