package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"time"

	"mailgate/internal/bounded"
	"mailgate/mimeparse"
	"mailgate/quarantine"
	"mailgate/rules"
	"mailgate/spool"
)

// cmdData reads the message and applies the verdict (docs/DESIGN.md "Data
// flow of one message"). The upstream's DATA starts only once mailgate has
// the whole message and its verdict.
func (s *Session) cmdData(ctx context.Context, arg string) outcome {
	switch {
	case arg != "":
		return fail(replyBadSyntax)
	case s.tx == nil:
		return fail(replyNeedMail)
	case len(s.tx.rcpts) == 0:
		return fail(replyNeedRcpt)
	case s.tx.bdat != nil:
		// RFC 3030 §3: DATA may not follow BDAT in a transaction.
		return fail(r(503, 5, 5, 1, "Error: DATA after BDAT"))
	}
	s.reply(replyDataStart)
	if err := s.flushIfIdle(); err != nil {
		return outcome{silent: true, end: verdictClientGone, quit: true}
	}
	cfg := s.rt.cfg
	t0 := time.Now()
	s.rd.idle, s.rd.hard = cfg.Timeouts.DataIdle, t0.Add(cfg.Timeouts.DataTotal)

	sp := spool.New(cfg.SpoolDir, cfg.Limits.SpoolMemory, s.srv.spoolBudget)
	defer sp.Close()
	dr := newDotReader(s.br, cfg.BareNewline == "normalize")
	lr := &limitReader{r: dr, n: cfg.Limits.MessageSize}
	var sink io.Writer = sp
	if tee := s.messageTee(); tee != nil {
		sink = teeWriter{sp: sp, tee: tee} // DKIM and ARC see the bytes as they arrive
	}
	io.Copy(sink, lr)  // the message, spooled (a spool error is sticky)
	derr := dr.drain() // on to the real end of data, whatever happened
	s.rd.idle, s.rd.hard = cfg.Timeouts.Command, time.Time{}
	timing := []any{"size", sp.Size(), "read_ms", time.Since(t0).Milliseconds()}

	if !dr.ended() {
		// The client went away or timed out: nothing is relayed.
		if errors.Is(derr, errTooBig) {
			derr = nil
		}
		o := s.readFailed(derr, "reading DATA")
		o.rset, o.quit = true, true
		return o
	}
	return s.message(ctx, sp, lr.exceeded, derr, timing)
}

// message decides on a message read whole, by DATA or BDAT: the checks of
// the data itself, the parse, the data stage, and what the verdict does.
// Both commands end here, so they decide alike.
func (s *Session) message(ctx context.Context, sp *spool.Spool, tooBig bool, lineErr error, timing []any) outcome {
	s.srv.metrics.messageSize.Observe(float64(sp.Size()))
	switch {
	case tooBig:
		return refuse(verdictTooBig, replyTooBig, timing)
	case lineErr != nil:
		s.log.Info("bad line endings in the message", "err", lineErr)
		return refuse(verdictBadData, replyBareNewline, timing)
	case sp.Err() != nil:
		s.log.Error("spooling failed", "err", sp.Err())
		return refuse(verdictLocalError, replyLocalError, timing)
	}
	pol := s.tx.pol
	var msg *mimeparse.Message
	if pol.NeedsMessage() || s.needsParse() {
		var o *outcome
		if msg, o = s.parse(sp, &timing); o != nil {
			// No Message-ID: an abandoned parse may still be reading
			// the spool file, whose offset a second reader would move.
			return *o
		}
		s.tx.messageID = oneLine(msg.Header("Message-ID"))
		if len(msg.Defects) > 0 {
			// The parser's findings (a closed vocabulary, each once), so
			// a refusal by a rule such as fail-closed-limits says which.
			timing = append(timing, "defects", msg.Defects)
		}
	}
	if msg == nil {
		s.tx.messageID = spoolMessageID(sp) // no policy needs the parse
	}
	if s.av != nil {
		// The whole message as received, streamed to clamd from the spool
		// when the data stage runs (clamd.Enricher); only the policies
		// that read Virus get here (newSession).
		s.av.Ctx, s.av.Open = ctx, func() (io.Reader, int64, error) {
			r, err := sp.Reader()
			return r, sp.Size(), err
		}
		s.av.Observe = func(outcome string, d time.Duration) {
			s.srv.metrics.observeScan(outcome, d)
			timing = append(timing, "virus", outcome, "virus_ms", d.Milliseconds())
		}
		defer func() { s.av.Ctx, s.av.Open, s.av.Observe = nil, nil, s.srv.metrics.observeScan }()
	}
	t1 := time.Now()
	d := pol.Data(msg, int(sp.Size()))
	timing = append(timing, "policy_ms", time.Since(t1).Milliseconds())
	switch d.Action {
	case rules.ActionReject, rules.ActionTempfail:
		return refuse(verdictOf(d), withEnhanced(d.Reply), timing)
	case rules.ActionDiscard:
		return refuse(verdictDiscard, replyQueuedOK, timing)
	case rules.ActionQuarantine:
		return s.applyQuarantine(sp, d, timing)
	}
	return s.relay(ctx, sp, msg, timing)
}

// parse parses the spooled message for at most timeouts.inspect
// (internal/bounded); past it, or when too many abandoned parses still
// run, the message is tempfailed, never passed. The parse reads the spool,
// not the client, so that it can be abandoned: an abandoned parse keeps
// the spool until it ends. DATA and BDAT both parse here.
func (s *Session) parse(sp *spool.Spool, timing *[]any) (*mimeparse.Message, *outcome) {
	tempfail := refuse(verdictTempfail, replyLocalError, *timing)
	raw, err := sp.Reader()
	if err != nil {
		s.log.Error("reading spool", "err", err)
		o := refuse(verdictLocalError, replyLocalError, *timing)
		return nil, &o
	}
	var msg *mimeparse.Message
	var perr error
	lim := s.rt.cfg.MimeLimits()
	if t, ok := s.rt.engine.(limitTrimmer); ok {
		lim = t.TrimLimits(lim)
	}
	t0 := time.Now()
	release := sp.Share()
	timeout := s.rt.cfg.Timeouts.Inspect
	err = s.srv.work.Run(timeout, func() {
		defer release()
		msg, perr = mimeparse.Parse(raw, lim)
	})
	*timing = append(*timing, "parse_ms", time.Since(t0).Milliseconds())
	switch {
	case err == nil && msg != nil && perr == nil:
		return msg, nil
	case err == nil:
		// A parse that failed other than by a read error is a bug:
		// fail closed, the client retries.
		s.log.Error("parse failed", "err", perr)
	case errors.Is(err, bounded.ErrTimeout):
		s.log.Warn("parse and inspection past timeouts.inspect: tempfailed", "timeout", "timeouts.inspect", "limit", timeout.String())
	case errors.Is(err, bounded.ErrBusy):
		release()
		s.log.Warn("tempfailed: too many parses or evaluations past their timeout still running", "timeout", "timeouts.inspect", "running", s.srv.work.Abandoned())
	default:
		s.log.Error("parse failed", "err", err)
	}
	tempfail.logArgs = *timing
	return nil, &tempfail
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

// applyQuarantine stores the message in quarantine_dir (quarantine.Save:
// fsynced before the client gets 250, DESIGN invariant 1) and drops it.
func (s *Session) applyQuarantine(sp *spool.Spool, d rules.Decision, timing []any) outcome {
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
				From: tx.from, Rule: d.Rule, Rules: tx.pol.Rules(), Size: sp.Size(),
			}
			for _, r := range tx.rcpts {
				rec.Rcpts = append(rec.Rcpts, r.addr)
			}
			err = quarantine.Save(s.rt.cfg.QuarantineDir, raw, sum, rec)
		}
	}
	if err != nil {
		s.log.Error("quarantine failed", "err", err)
		return refuse(verdictLocalError, replyLocalError, timing)
	}
	return refuse(verdictQuarantine, replyQueuedOK, append(timing, "quarantine", sum))
}

// relay sends the (possibly rewritten) message upstream and relays the
// upstream's reply to the final dot (DESIGN invariant 1).
func (s *Session) relay(ctx context.Context, sp *spool.Spool, msg *mimeparse.Message, timing []any) outcome {
	ed := s.tx.pol.Edits()
	body, err := sp.Reader()
	if err != nil {
		s.log.Error("reading spool", "err", err)
		return refuse(verdictLocalError, replyLocalError, timing)
	}
	if s.up == nil {
		return outcome{reply: replyUpstreamFailed, end: verdictUpstreamFailed, logArgs: timing}
	}
	if rp, ok := s.applyRcptEdits(ctx, ed); !ok {
		return outcome{reply: rp, end: verdictUpstreamRefused, logArgs: timing}
	}
	if len(s.tx.rcpts) == 0 {
		// Every recipient was removed: nothing to deliver.
		return refuse(verdictDiscard, replyQueuedOK, timing)
	}
	ruleEdits := ed
	if ar := s.authResults(); len(ar) > 0 {
		all := *ed
		all.Headers = append(append([]rules.HeaderEdit(nil), ed.Headers...), ar...)
		ed = &all
	}
	var rw *rewriter
	signed, release, err := s.resign(body, msg, ed, ruleEdits)
	if err != nil {
		s.log.Error("DKIM re-signing failed", "err", err)
		return refuse(verdictLocalError, replyLocalError, timing)
	}
	if release != nil {
		defer release()
	}
	switch {
	case signed != nil:
		body = signed
		timing = append(timing, "rewritten", true, "dkim_resigned", true)
	case !ed.Empty() && msg != nil:
		rw = s.startRewrite(body, msg, ed)
		body = rw.pr
		timing = append(timing, "rewritten", !ruleEdits.Empty())
	}
	t1 := time.Now()
	rp, err := s.up.Data(ctx, body)
	timing = append(timing, "upstream_ms", time.Since(t1).Milliseconds())
	if rerr := rw.wait(); rerr != nil && err != nil {
		// The upstream got part of the message and no end of data: it
		// drops it (invariant 1); so does mailgate's connection to it.
		s.log.Error("rewriting failed", "err", rerr)
		s.closeUpstream(true)
		return outcome{reply: replyLocalError, end: verdictLocalError, logArgs: timing}
	}
	if err != nil {
		s.upstreamFailed(err)
		return outcome{reply: replyUpstreamFailed, end: verdictUpstreamFailed, logArgs: timing}
	}
	s.tx.upstream = rp
	v := verdictAccept
	if rp.Code/100 != 2 {
		v = verdictUpstreamRefused
	}
	return outcome{reply: rp, end: v, logArgs: timing}
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
	rewrite := rules.Rewrite // the Authentication-Results field needs no engine
	if eng := s.rt.engine; eng != nil {
		rewrite = eng.Rewrite
	}
	go func() {
		defer close(rw.done)
		_, rw.err = rewrite(pw, body, msg, ed)
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
