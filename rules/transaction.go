package rules

import (
	"mailgate/mimeparse"
)

// StageEvaluator evaluates one stage. *Evaluator is one; a front-end may
// wrap it to count, log or bound the evaluation (docs/DESIGN.md "Data flow
// of one message").
type StageEvaluator interface {
	Eval(stage Stage, f *Facts) Verdict
}

// Enricher fills in, before a stage's rules run, the facts that lookups
// compute outside the dialogue (DNS: PTR, DNSBL, SPF, DKIM, DMARC; clamd):
// the front-end starts each lookup as soon as its inputs exist, and Enrich
// waits only for what the set reads at that stage (Set.Uses,
// Set.UsesProperty). check and the policy tests give static facts.
type Enricher interface {
	Enrich(stage Stage, f *Facts)
}

// Decision is what the policy says at one step of the SMTP dialogue.
// Action is ActionContinue when the command goes on (relayed upstream);
// ActionReject and ActionTempfail refuse the command with Reply. At Data,
// Action is the final verdict: accept, reject, tempfail, discard or
// quarantine (never continue).
type Decision struct {
	Action Action
	Reply  Reply  // for reject and tempfail (defaults applied), or a custom 250
	Rule   string // the rule that decided Action, "" when none did
}

// Refused reports whether the command is refused (reject or tempfail).
func (d Decision) Refused() bool { return d.Action == ActionReject || d.Action == ActionTempfail }

var decideContinue = Decision{Action: ActionContinue}

// StageResult is one evaluated stage, as check --explain shows it.
type StageResult struct {
	Stage   Stage
	Rcpt    string // the recipient decided (rcpt stage)
	Verdict Verdict
}

// Conn is the policy side of one client connection: the connect and helo
// stages and the transactions opened on it. The proxy, the milter, check
// and the policy test runner all drive a Conn, so they decide alike
// (docs/DESIGN.md "Invariants": a back-test predicts production).
//
// Stages before the transaction keep what they decide for every later
// transaction of the connection: accept (no more rules), a discard or
// quarantine verdict, edits, score and tags. For a trusted forwarder the
// connect and helo stages wait for the first MAIL, when XFORWARD or
// XCLIENT has named the original client.
type Conn struct {
	ev       StageEvaluator // nil: no policies, everything continues
	enrich   Enricher       // nil: no lookups
	client   Client
	deferPre bool // connect/helo wait for the first MAIL (trusted forwarder)
	preDone  bool // the deferred stages ran

	// What the connect and the helo stage decided, kept for every
	// transaction of the connection. A new HELO/EHLO replaces the helo
	// stage's (its score is not counted twice).
	pre   [2]preResult
	trace []StageResult
}

// preResult is what one connect or helo stage decided.
type preResult struct {
	accept bool     // accept: no more rules for the connection
	final  *Verdict // discard or quarantine: every transaction's verdict
	edits  Edits
	score  float64
	tags   []string
	rules  []string
}

// NewConn starts the policy side of a connection. With deferPre (a trusted
// forwarder) Connect and Helo only record, and both stages run at the
// first Mail with the client as SetClient left it.
func NewConn(ev StageEvaluator, c Client, deferPre bool) *Conn {
	return &Conn{ev: ev, client: c, deferPre: deferPre}
}

// SetEnricher installs the lookups that fill in facts before each stage.
func (c *Conn) SetEnricher(e Enricher) { c.enrich = e }

// AddEnricher adds lookups to those already installed (DNS and clamd);
// they fill in facts in the order added.
func (c *Conn) AddEnricher(e Enricher) {
	switch es := c.enrich.(type) {
	case nil:
		c.enrich = e
	case Enrichers:
		c.enrich = append(es, e)
	default:
		c.enrich = Enrichers{es, e}
	}
}

// eval runs one stage with the facts the lookups give.
func (c *Conn) eval(stage Stage, f *Facts) Verdict {
	if c.enrich != nil {
		c.enrich.Enrich(stage, f)
	}
	return c.ev.Eval(stage, f)
}

// Client is the client the rules see.
func (c *Conn) Client() Client { return c.client }

// SetClient replaces the client after XFORWARD or XCLIENT: what the
// connection decided before no longer holds, and the connect and helo
// stages run again at the next Mail.
func (c *Conn) SetClient(cl Client) {
	c.client = cl
	c.preDone = false
	c.pre = [2]preResult{}
}

// UpdateClient changes client facts that do not restart the policy (TLS
// negotiated, AUTH succeeded, a pregreet seen, a HELO refused).
func (c *Conn) UpdateClient(cl Client) { c.client = cl }

func (c *Conn) acceptAll() bool { return c.pre[0].accept || c.pre[1].accept }

// Connect runs the connect stage. A refusal ends the connection.
func (c *Conn) Connect() Decision {
	if c.deferPre {
		return decideContinue
	}
	return c.runPre(StageConnect)
}

// Helo runs the helo stage for the name given. A refusal refuses HELO/EHLO.
func (c *Conn) Helo(name string) Decision {
	c.client.HELO = name
	if c.deferPre {
		return decideContinue
	}
	return c.runPre(StageHelo)
}

func (c *Conn) runPre(stage Stage) Decision {
	slot := &c.pre[0]
	if stage == StageHelo {
		slot = &c.pre[1]
	}
	*slot = preResult{}
	if c.ev == nil || c.acceptAll() {
		return decideContinue
	}
	f := Facts{Client: c.client, Score: c.pre[0].score, Tags: c.pre[0].tags}
	v := c.eval(stage, &f)
	c.trace = appendTrace(c.trace, StageResult{Stage: stage, Verdict: v})
	slot.rules = v.Rules
	switch v.Action {
	case ActionReject, ActionTempfail:
		return refusal(v)
	case ActionAccept:
		slot.accept = true
	case ActionDiscard, ActionQuarantine:
		vv := v
		slot.final = &vv
	}
	slot.score, slot.tags = v.Score, v.Tags
	mergeEdits(&slot.edits, &v.Edits)
	return decideContinue
}

// preRules are the rules the connect and helo stages matched.
func (c *Conn) preRules() []string {
	return appendNew(appendNew(nil, c.pre[0].rules...), c.pre[1].rules...)
}

// refusal is the decision of a refusing verdict, with the defaults of the
// rules contract when the rule gave no usable reply.
func refusal(v Verdict) Decision {
	rp := v.Reply
	switch v.Action {
	case ActionTempfail:
		if rp.Code/100 != 4 {
			rp = ReplyTempfailed
		}
	case ActionReject:
		if rp.Code/100 != 5 && rp.Code/100 != 4 {
			rp = ReplyRejected
		}
	}
	return Decision{Action: v.Action, Reply: rp, Rule: v.Rule}
}

// Tx is the policy side of one transaction (MAIL to the end of DATA).
type Tx struct {
	conn     *Conn
	env      Envelope
	accepted bool     // accept decided: no more rules
	final    *Verdict // discard or quarantine decided before DATA
	edits    Edits
	score    float64
	tags     []string
	rules    []string
	trace    []StageResult
	refused  *Decision // the last refused recipient (for a transaction left with none)
	decided  bool
}

// Mail opens a transaction: the deferred connect and helo stages of a
// trusted forwarder's client, then the mail stage. On a refusal the
// transaction is over; its Rules still say which rules matched.
func (c *Conn) Mail(from string, size int, smtputf8 bool) (*Tx, Decision) {
	t := &Tx{conn: c, env: Envelope{From: from, FromDomain: addrDomain(from), Size: size, SMTPUTF8: smtputf8}}
	if c.deferPre && !c.preDone {
		c.preDone = true
		for _, st := range []Stage{StageConnect, StageHelo} {
			if d := c.runPre(st); d.Refused() {
				t.rules = c.preRules()
				t.trace, c.trace = c.trace, nil
				return t, d
			}
		}
	}
	t.trace, c.trace = c.trace, nil
	t.rules = c.preRules()
	for _, p := range c.pre {
		t.score += p.score
		t.tags = appendNew(t.tags, p.tags...)
		mergeEdits(&t.edits, &p.edits)
		if p.final != nil && t.final == nil {
			vv := *p.final
			t.final = &vv
		}
	}
	t.accepted = c.acceptAll()
	return t, t.eval(StageMail, "")
}

// eval runs a mail or rcpt stage: a refusal refuses the command, accept
// ends the rules, discard or quarantine becomes the final verdict.
func (t *Tx) eval(stage Stage, rcpt string) Decision {
	if t.conn.ev == nil || t.accepted {
		return decideContinue
	}
	f := Facts{Client: t.conn.client, Envelope: t.env, Rcpt: rcpt, Score: t.score, Tags: t.tags}
	v := t.conn.eval(stage, &f)
	t.note(stage, rcpt, v)
	switch v.Action {
	case ActionReject, ActionTempfail:
		if stage == StageMail {
			// The transaction ends here: its score and tags say why.
			// (A refused recipient's do not count for the others.)
			t.score += v.Score
			t.tags = appendNew(t.tags, v.Tags...)
		}
		return refusal(v)
	case ActionAccept:
		t.accepted = true
	case ActionDiscard, ActionQuarantine:
		if t.final == nil {
			vv := v
			t.final = &vv
		}
	}
	t.fold(v)
	return decideContinue
}

// note records what a stage's rules did, refusing or not.
func (t *Tx) note(stage Stage, rcpt string, v Verdict) {
	t.trace = appendTrace(t.trace, StageResult{Stage: stage, Rcpt: rcpt, Verdict: v})
	t.rules = appendNew(t.rules, v.Rules...)
}

// appendTrace appends to a trace that starts with room for a usual
// transaction's stages (a StageResult is some 300 bytes: growing 1, 2, 4,
// 8 allocated twice what one slice of 8 does).
func appendTrace(tr []StageResult, r StageResult) []StageResult {
	if tr == nil {
		tr = make([]StageResult, 0, 8)
	}
	return append(tr, r)
}

// fold adds a verdict that lets the transaction go on: its score, tags and
// edits accumulate (a refused command's edits do not).
func (t *Tx) fold(v Verdict) {
	t.score += v.Score
	t.tags = appendNew(t.tags, v.Tags...)
	mergeEdits(&t.edits, &v.Edits)
}

// Rcpt runs the rcpt stage for one recipient. A refusal refuses this
// recipient only; the others go on. The front-end calls AddRcpt once the
// recipient is accepted (by the upstream, where there is one).
func (t *Tx) Rcpt(addr string) Decision {
	d := t.eval(StageRcpt, addr)
	if d.Refused() {
		dd := d
		t.refused = &dd
	}
	return d
}

// AddRcpt records an accepted recipient: the envelope of later stages has it.
func (t *Tx) AddRcpt(addr string) {
	t.env.Rcpts = append(t.env.Rcpts, addr)
	t.env.RcptDomains = append(t.env.RcptDomains, addrDomain(addr))
}

// RemoveRcpt drops a recipient (a rcpt_remove edit applied by the front-end).
func (t *Tx) RemoveRcpt(addr string) {
	for i, r := range t.env.Rcpts {
		if r == addr {
			t.env.Rcpts = append(t.env.Rcpts[:i:i], t.env.Rcpts[i+1:]...)
			t.env.RcptDomains = append(t.env.RcptDomains[:i:i], t.env.RcptDomains[i+1:]...)
			return
		}
	}
}

// Rcpts are the recipients accepted so far.
func (t *Tx) Rcpts() []string { return t.env.Rcpts }

// NoRcpt is the decision for a transaction that ended with no recipient
// accepted: the last recipient refusal (what the client saw), or accept
// when none was refused by policy (the upstream refused them).
func (t *Tx) NoRcpt() Decision {
	if t.refused != nil {
		return *t.refused
	}
	return Decision{Action: ActionAccept}
}

// NeedsMessage reports whether Data needs the parsed message: for the data
// stage's rules, or for edits that need the message's offsets.
func (t *Tx) NeedsMessage() bool {
	if t.final != nil {
		return false
	}
	return t.conn.ev != nil && !t.accepted || !t.edits.Empty()
}

// Data decides the transaction on the whole message (msg may be nil when
// NeedsMessage is false): a verdict decided before DATA stands; otherwise
// the data stage's rules run unless accept was decided earlier. The
// decision is never ActionContinue: no terminal rule means accept.
func (t *Tx) Data(msg *mimeparse.Message, size int) Decision {
	t.decided = true
	if size > 0 {
		t.env.Size = size
	}
	if t.final != nil {
		v := *t.final
		return Decision{Action: v.Action, Reply: v.Reply, Rule: v.Rule}
	}
	if t.conn.ev == nil || t.accepted {
		return Decision{Action: ActionAccept}
	}
	f := Facts{Client: t.conn.client, Envelope: t.env, Msg: msg, Score: t.score, Tags: t.tags}
	v := t.conn.eval(StageData, &f)
	t.note(StageData, "", v)
	switch v.Action {
	case ActionReject, ActionTempfail:
		// The transaction ends here: its score and tags say why.
		t.score += v.Score
		t.tags = appendNew(t.tags, v.Tags...)
		return refusal(v)
	case ActionContinue:
		v.Action = ActionAccept
	}
	t.fold(v)
	return Decision{Action: v.Action, Reply: v.Reply, Rule: v.Rule}
}

// Edits is the merged rewriting plan of every stage so far.
func (t *Tx) Edits() *Edits { return &t.edits }

// Envelope is the transaction's envelope so far.
func (t *Tx) Envelope() Envelope { return t.env }

// Rules lists every rule that matched in this transaction (and in the
// connection's stages before it), in order, each once.
func (t *Tx) Rules() []string { return t.rules }

// Monitor lists the monitor-mode rules that matched.
func (t *Tx) Monitor() []string {
	var out []string
	for _, sr := range t.trace {
		out = appendNew(out, sr.Verdict.Monitor...)
	}
	return out
}

// Score and Tags are the accumulated score and tags.
func (t *Tx) Score() float64 { return t.score }
func (t *Tx) Tags() []string { return t.tags }

// Errors are the rules' runtime errors in this transaction.
func (t *Tx) Errors() []error {
	var out []error
	for _, sr := range t.trace {
		out = append(out, sr.Verdict.Errors...)
	}
	return out
}

// Trace lists every stage evaluated, in order (check --explain).
func (t *Tx) Trace() []StageResult { return t.trace }

// mergeEdits adds src's plan to dst's. Subject prefixes accumulate as
// within one stage (a prefix already present is not added twice);
// strips, added and removed recipients are kept once each.
func mergeEdits(dst, src *Edits) {
	dst.Headers = append(dst.Headers, src.Headers...)
	if src.SubjectPrefix != "" && !containsStr(dst.SubjectPrefix, src.SubjectPrefix) {
		dst.SubjectPrefix += src.SubjectPrefix
	}
	for _, s := range src.Strip {
		if !stripped(dst.Strip, s.Path) {
			dst.Strip = append(dst.Strip, s)
		}
	}
	dst.RcptAdd = appendNew(dst.RcptAdd, src.RcptAdd...)
	dst.RcptRemove = appendNew(dst.RcptRemove, src.RcptRemove...)
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// appendNew appends the values of add not already in dst.
func appendNew(dst []string, add ...string) []string {
	for _, a := range add {
		if !contains(dst, a) {
			dst = append(dst, a)
		}
	}
	return dst
}

// SimInput is one transaction for Simulate: the client (with its HELO),
// the envelope, the message, and the lookups' facts (nil: none).
type SimInput struct {
	Client Client
	From   string
	Rcpts  []string
	Msg    *mimeparse.Message
	Size   int
	Enrich Enricher
}

// SimResult is the outcome of Simulate.
type SimResult struct {
	Decision Decision
	Tx       *Tx
}

// Simulate runs one transaction through a Conn as a front-end would with
// an upstream that accepts every command: connect, helo, mail, each
// recipient, data. check and the policy test runner use it, so what they
// report is what serve decides for the same message and envelope.
func Simulate(ev StageEvaluator, in SimInput) SimResult {
	client, from, rcpts, msg, size := in.Client, in.From, in.Rcpts, in.Msg, in.Size
	c := NewConn(ev, client, false)
	c.SetEnricher(in.Enrich)
	helo := client.HELO
	c.client.HELO = ""
	pre := func(d Decision) SimResult {
		t := &Tx{conn: c, trace: c.trace, rules: c.preRules()}
		return SimResult{Decision: d, Tx: t}
	}
	if d := c.Connect(); d.Refused() {
		return pre(d)
	}
	if d := c.Helo(helo); d.Refused() {
		return pre(d)
	}
	t, d := c.Mail(from, size, false)
	if d.Refused() {
		return SimResult{Decision: d, Tx: t}
	}
	for _, r := range rcpts {
		if d := t.Rcpt(r); !d.Refused() {
			t.AddRcpt(r)
		}
	}
	if len(t.Rcpts()) == 0 {
		return SimResult{Decision: t.NoRcpt(), Tx: t}
	}
	d = t.Data(msg, size)
	if d.Action == ActionAccept && len(t.edits.RcptRemove) > 0 {
		// The front-end applies rcpt_remove when it relays: a transaction
		// left with no recipient delivers nothing (the proxy's "discard").
		for _, r := range t.edits.RcptRemove {
			t.RemoveRcpt(r)
		}
		if len(t.Rcpts()) == 0 {
			d = Decision{Action: ActionDiscard}
		}
	}
	return SimResult{Decision: d, Tx: t}
}
