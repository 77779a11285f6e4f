package proxy

import (
	"context"

	"mailgate/rules"
)

// verdict labels how a transaction ended: the transaction line's
// verdict= and the label of mailgate_smtp_transactions_total
// (docs/DESIGN.md "Observability"). Constants only: a typo would make a
// new metric series.
type verdict string

const (
	verdictAccept          verdict = "accept"           // relayed, the upstream said 2xx
	verdictReject          verdict = "reject"           // refused by policy, 5xx
	verdictTempfail        verdict = "tempfail"         // deferred by policy or a safety net, 4xx
	verdictDiscard         verdict = "discard"          // accepted and dropped
	verdictQuarantine      verdict = "quarantine"       // accepted and held
	verdictTooBig          verdict = "too-big"          // over limits.message_size
	verdictBadData         verdict = "bad-data"         // bare CR, bare LF or NUL in the data
	verdictLocalError      verdict = "local-error"      // spool, parse, quarantine or rewrite failed: 4xx
	verdictUpstreamDown    verdict = "upstream-down"    // no upstream session could be opened
	verdictUpstreamFailed  verdict = "upstream-failed"  // the upstream session failed mid-transaction
	verdictUpstreamRefused verdict = "upstream-refused" // the upstream's own refusal, relayed
	verdictReset           verdict = "reset"            // RSET, HELO/EHLO or STARTTLS ended it
	verdictQuit            verdict = "quit"             // QUIT inside a transaction
	verdictClientGone      verdict = "client-gone"      // the client closed the connection
	verdictTimeout         verdict = "timeout"          // the client was too slow
	verdictShutdown        verdict = "shutdown"         // cut off by SIGTERM's drain
)

// verdictOf labels a refusing policy decision.
func verdictOf(d rules.Decision) verdict {
	if d.Action == rules.ActionTempfail || d.Reply.Temporary() {
		return verdictTempfail
	}
	return verdictReject
}

// outcome is what a command handler decided; Session.act carries it out,
// in one place: reset the upstream's transaction when asked, send the
// reply, end and log the transaction, count a client error, close.
type outcome struct {
	reply   Reply
	raw     bool    // send the reply as it is (greeting, HELO/EHLO): no enhanced code added
	silent  bool    // nothing to send: the handler already answered (a closed connection)
	end     verdict // the transaction ends with this label; "": it goes on
	rset    bool    // reset the upstream's transaction first
	bad     bool    // a client error, counted against limits.errors
	quit    bool    // close the session after the reply
	logArgs []any   // more fields for the transaction line
}

// say answers rp and changes nothing else.
func say(rp Reply) outcome { return outcome{reply: rp} }

// fail answers rp and counts a client error.
func fail(rp Reply) outcome { return outcome{reply: rp, bad: true} }

// endTx answers rp and ends the transaction with v.
func endWith(v verdict, rp Reply) outcome { return outcome{reply: rp, end: v} }

// refuse answers a refused message: the upstream's transaction is reset.
func refuse(v verdict, rp Reply, logArgs []any) outcome {
	return outcome{reply: rp, end: v, rset: true, logArgs: logArgs}
}

// act carries out an outcome.
func (s *Session) act(ctx context.Context, o outcome) {
	if o.rset {
		s.upstreamRset(ctx)
	}
	if !o.silent {
		if o.raw {
			s.replyRaw(o.reply)
		} else {
			s.reply(o.reply)
		}
	}
	if o.end != "" {
		rp := o.reply
		if o.silent || o.end == verdictReset || o.end == verdictQuit {
			rp = Reply{}
		}
		s.endTx(o.end, rp, o.logArgs)
	}
	if o.bad {
		s.countError()
	}
	if o.quit {
		s.quit = true
	}
}
