package milter

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"

	"mailgate/mimeparse"
	"mailgate/quarantine"
	"mailgate/rules"
)

// endOfMessage runs the data stage on the spooled message and applies the
// decision: a refusal as the reply code, discard, quarantine as the MTA's
// hold (with mailgate's own copy), accept with the edits as milter
// modification actions. Any local failure tempfails (fail closed).
func (ss *session) endOfMessage(m gomilter.Modifier) *gomilter.Response {
	tx, sp := ss.tx, ss.spool()
	size := sp.Size()
	timing := []any{"size", size}
	fail := func(why string, err error) *gomilter.Response {
		ss.logger().Error(why, "err", err)
		ss.endTx(tx, "local-error", replyLocalError, timing)
		return respond(replyLocalError)
	}
	switch {
	case ss.tooBig:
		ss.endTx(tx, "too-big", replyTooBig, timing)
		return respond(replyTooBig)
	case sp.Err() != nil:
		return fail("spooling failed", sp.Err())
	}
	var msg *mimeparse.Message
	if tx.NeedsMessage() || ss.needsParse() {
		t0 := time.Now()
		var ok bool
		if msg, ok = ss.parse(); !ok {
			ss.endTx(tx, "tempfail", replyLocalError, timing)
			return respond(replyLocalError)
		}
		timing = append(timing, "parse_ms", time.Since(t0).Milliseconds())
		if len(msg.Defects) > 0 {
			timing = append(timing, "defects", msg.Defects)
		}
	}
	d := tx.Data(msg, int(size))
	switch d.Action {
	case rules.ActionReject, rules.ActionTempfail:
		ss.endTx(tx, string(d.Action), d.Reply, timing)
		return respond(d.Reply)
	case rules.ActionDiscard:
		ss.endTx(tx, "discard", rules.Reply{}, timing)
		return gomilter.RespDiscard
	case rules.ActionQuarantine:
		sum, err := ss.saveQuarantine(tx, d)
		if err != nil {
			return fail("quarantine failed", err)
		}
		if err := m.Quarantine("mailgate: rule " + d.Rule); err != nil {
			return fail("quarantine (MTA hold) failed", err)
		}
		ss.endTx(tx, "quarantine", rules.Reply{}, append(timing, "quarantine", sum))
		return gomilter.RespAccept
	}
	ed := tx.Edits()
	removed, added := rcptEdits(tx.Rcpts(), ed)
	if len(removed) > 0 && len(removed) == len(tx.Rcpts()) {
		// Every recipient removed: nothing to deliver (the proxy's and
		// rules.Simulate's discard).
		ss.endTx(tx, "discard", rules.Reply{}, timing)
		return gomilter.RespDiscard
	}
	ruleEdits := ed
	if ar := ss.authResults(); len(ar) > 0 {
		// The Authentication-Results field goes through the same plan
		// as the rules' edits (proxy/data.go relay does the same).
		all := *ed
		all.Headers = append(append([]rules.HeaderEdit(nil), ed.Headers...), ar...)
		ed = &all
	}
	var ops []hdrOp
	var body []mimeparse.Edit
	if msg != nil && !ed.Empty() {
		plan, err := rules.PlanBlock(msg, ed, func() ([]byte, error) { return ss.readBlock(msg.Parts[0].BodyOffset) })
		if err != nil {
			return fail("planning edits", err)
		}
		if ops, body, err = milterOps(ss.fields, ss.hdrEnd, plan, ss.leadSpc); err != nil {
			return fail("mapping edits to milter actions", err)
		}
	}
	sig, err := ss.resign(msg, ed, ruleEdits)
	if err != nil {
		return fail("DKIM re-signing failed", err)
	}
	if sig != nil {
		// Inserted last, at the top: after every other header action.
		ops = append(ops, *sig)
		timing = append(timing, "dkim_resigned", true)
	}
	if err := ss.modify(m, removed, added, ops, body); err != nil {
		return fail("sending modifications", err)
	}
	if !ruleEdits.Empty() && (len(ops) > 0 || len(body) > 0) {
		timing = append(timing, "rewritten", true)
	}
	ss.endTx(tx, "accept", rules.Reply{}, timing)
	return gomilter.RespAccept
}

// rcptEdits are the recipients to delete (present ones only) and to add
// (absent ones only).
func rcptEdits(rcpts []string, ed *rules.Edits) (removed, added []string) {
	for _, r := range ed.RcptRemove {
		if slices.Contains(rcpts, r) && !slices.Contains(removed, r) {
			removed = append(removed, r)
		}
	}
	for _, a := range ed.RcptAdd {
		if !slices.Contains(rcpts, a) && !slices.Contains(added, a) {
			added = append(added, a)
		}
	}
	return removed, added
}

// modify sends the modification actions: recipients, then header changes
// (from the end of the header up, so that every index counts the fields
// as they still stand), then the body, all in one go as Postfix wants.
func (ss *session) modify(m gomilter.Modifier, removed, added []string, ops []hdrOp, body []mimeparse.Edit) error {
	for _, r := range removed {
		if err := m.DeleteRecipient(r); err != nil {
			return err
		}
	}
	for _, a := range added {
		if err := m.AddRecipient(a, ""); err != nil {
			return err
		}
	}
	for _, op := range ops {
		var err error
		if op.insert {
			err = m.InsertHeader(op.index, op.name, op.value)
		} else {
			err = m.ChangeHeader(op.index, op.name, op.value)
		}
		if err != nil {
			return err
		}
	}
	if len(body) == 0 {
		return nil
	}
	raw, err := ss.sp.Reader()
	if err != nil {
		return err
	}
	if _, err := io.CopyN(io.Discard, raw, ss.hdrEnd+2); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := mimeparse.Splice(pw, raw, body)
		pw.CloseWithError(err)
		done <- err
	}()
	err = m.ReplaceBody(pr)
	pr.Close()
	if serr := <-done; serr != nil && !errors.Is(serr, io.ErrClosedPipe) {
		return serr
	}
	return err
}

// readBlock reads the first n bytes of the spooled message (the
// top-level header block, for rules.PlanBlock).
func (ss *session) readBlock(n int64) ([]byte, error) {
	raw, err := ss.sp.Reader()
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	_, err = io.ReadFull(raw, b)
	return b, err
}

// saveQuarantine stores mailgate's own copy of the message as received
// and its record (quarantine.Save), before the MTA is told to hold it.
func (ss *session) saveQuarantine(tx *rules.Tx, d rules.Decision) (string, error) {
	raw, err := ss.sp.Reader()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, raw); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if raw, err = ss.sp.Reader(); err != nil {
		return "", err
	}
	rec := quarantine.Record{
		Time: time.Now().UTC(), Session: ss.id(), ClientIP: ss.client.IP, HELO: ss.client.HELO,
		From: ss.from, Rcpts: tx.Rcpts(), Rule: d.Rule, Rules: tx.Rules(), Size: ss.sp.Size(),
	}
	return sum, quarantine.Save(ss.rt.cfg.QuarantineDir, raw, sum, rec)
}

// hdrOp is one header modification action: ChangeHeader (index counts the
// fields of that name, 1-based; an empty value deletes) or InsertHeader
// (index counts every field: insert after that many).
type hdrOp struct {
	insert      bool
	index       int
	name, value string
}

// errUnmappable: a splice of the plan does not fall on field boundaries
// (a bug: the plan's offsets come from the same bytes); the message is
// tempfailed.
var errUnmappable = errors.New("milter: edit not on header field boundaries")

// milterOps maps a plan (byte splices over the spooled message, as
// rules.Rewrite applies them in the proxy) to milter actions: a splice in
// the header becomes deletions of the fields it covers and insertions of
// the fields it carries (one field replaced by one of the same name, such
// as a prefixed Subject, is a change); splices in the body are returned,
// shifted to body offsets, for a body replacement. fields are the
// top-level fields in order; hdrEnd is the offset of the empty line that
// ends them. The header actions come from the last field up, so that each
// index counts the fields as they stand when the MTA applies it (Postfix
// unlinks a deleted field). leadSpc: values are sent with their leading
// space; otherwise without it, as the MTA puts one after the colon.
func milterOps(fields []field, hdrEnd int64, plan []mimeparse.Edit, leadSpc bool) ([]hdrOp, []mimeparse.Edit, error) {
	bodyStart := hdrEnd + 2
	var ops []hdrOp
	var body []mimeparse.Edit
	for i := len(plan) - 1; i >= 0; i-- {
		e := plan[i]
		switch {
		case e.Start >= bodyStart:
			body = append(body, mimeparse.Edit{Start: e.Start - bodyStart, End: e.End - bodyStart, Data: e.Data})
			continue
		case e.End > hdrEnd:
			return nil, nil, fmt.Errorf("%w: [%d,%d) across the end of the header at %d", errUnmappable, e.Start, e.End, hdrEnd)
		}
		pos := len(fields)
		for j, f := range fields {
			if f.start >= e.Start {
				pos = j
				break
			}
		}
		if pos < len(fields) && fields[pos].start != e.Start || pos == len(fields) && e.Start != hdrEnd {
			return nil, nil, fmt.Errorf("%w: starts at %d", errUnmappable, e.Start)
		}
		end := pos
		for end < len(fields) && fields[end].end <= e.End {
			end++
		}
		if end == pos && e.End != e.Start || end > pos && fields[end-1].end != e.End {
			return nil, nil, fmt.Errorf("%w: ends at %d", errUnmappable, e.End)
		}
		var add []mimeparse.Field
		if err := mimeparse.ScanHeader(bytes.NewReader(e.Data), func(f mimeparse.Field) { add = append(add, f) }); err != nil {
			return nil, nil, err
		}
		value := func(f mimeparse.Field) string {
			v := strings.TrimRight(f.Raw, "\r\n")
			if !leadSpc {
				v = strings.TrimPrefix(v, " ")
			}
			return v
		}
		if end-pos == 1 && len(add) == 1 && strings.EqualFold(add[0].Name, fields[pos].name) {
			ops = append(ops, hdrOp{index: sameName(fields, pos), name: add[0].Name, value: value(add[0])})
			continue
		}
		for j := end - 1; j >= pos; j-- {
			ops = append(ops, hdrOp{index: sameName(fields, j), name: fields[j].name})
		}
		for k, f := range add {
			ops = append(ops, hdrOp{insert: true, index: pos + k, name: f.Name, value: value(f)})
		}
	}
	slices.Reverse(body)
	return ops, body, nil
}

// sameName is the 1-based index of fields[i] among the fields of its name
// (ChangeHeader's index; names compare case-insensitively).
func sameName(fields []field, i int) int {
	n := 0
	for j := 0; j <= i; j++ {
		if strings.EqualFold(fields[j].name, fields[i].name) {
			n++
		}
	}
	return n
}
