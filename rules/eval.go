package rules

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr/vm"

	"mailgate/mimeparse"
)

// Evaluator evaluates a Set. It holds a reused vm.VM and environment, so it
// is not goroutine-safe: use one per session goroutine.
type Evaluator struct {
	set *Set
	st  Store
	// stateErr is the Store's failure during the current rule: it turns
	// the rule's error into a tempfail whatever rule_error says.
	stateErr error
	vm       vm.VM
	env      Env
	msg      *mimeparse.Message

	envAny any  // env boxed once per Eval: what the programs run with
	stale  bool // Score or Tags changed since envAny was boxed

	strips  []*mimeparse.Part // scratch for one rule's strip result
	scratch verdictScratch
	boxes   partBoxes // part fields boxed once per message (partfields.go)
	sb      strings.Builder

	// the recipients whose domains were derived last (a copy), and those
	// domains: shared by the Envs of every stage of one transaction
	lastRcpts, lastDomains []string
}

// NewEvaluator returns an Evaluator of s using the Set's State.
func (s *Set) NewEvaluator() *Evaluator { return s.newEvaluator(s.st) }

func (s *Set) newEvaluator(st Store) *Evaluator {
	e := &Evaluator{set: s, st: st}
	// expr's own bound on what one run may allocate (docs/DEVELOPING.md §3.6); the
	// work is bounded at load (cost.go).
	e.vm.MemoryBudget = MemoryBudget
	e.env.Header = e.header
	e.env.HeaderAll = e.headerAll
	e.env.HasHeader = e.hasHeader
	e.env.Rate = e.rate
	e.env.PartAny = e.partAny
	e.env.RateAny = e.rateAny
	e.env.Lists = s.lists
	return e
}

// HasStage reports whether any rule runs at stage.
func (e *Evaluator) HasStage(st Stage) bool { return e.set.HasStage(st) }

func (e *Evaluator) header(name string) string {
	if e.msg == nil {
		return ""
	}
	return e.msg.Header(name)
}

func (e *Evaluator) headerAll(name string) []string {
	if e.msg == nil {
		return nil
	}
	return e.msg.HeaderAll(name)
}

func (e *Evaluator) hasHeader(name string) bool {
	return e.msg != nil && e.msg.HasHeader(name)
}

// rateAny is rate for the patched programs: func(any, any) any is a
// signature expr calls without reflection, func(string, string) int is not.
func (e *Evaluator) rateAny(key, window any) any {
	return e.rate(key.(string), window.(string))
}

func (e *Evaluator) rate(key, window string) int {
	d, err := time.ParseDuration(window)
	if err != nil || d <= 0 {
		panic(fmt.Sprintf("rate: window %q is not a duration such as 1m", window))
	}
	n, err := e.st.Rate(key, d)
	if err != nil {
		e.stateErr = stateError(err)
		panic(e.stateErr) // expr's VM turns it into the rule's error, wrapped
	}
	return n
}

// stateError makes sure a Store's error wraps ErrState.
func stateError(err error) error {
	if errors.Is(err, ErrState) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrState, err)
}

// prepare builds the environment once per Eval call: envelope and derived
// facts, then (data stage) the message's.
func (e *Evaluator) prepare(stage Stage, f *Facts) {
	env := &e.env
	env.Client = f.Client
	env.Envelope = f.Envelope
	if env.Envelope.FromDomain == "" && env.Envelope.From != "" {
		env.Envelope.FromDomain = addrDomain(env.Envelope.From)
	}
	if len(env.Envelope.RcptDomains) != len(env.Envelope.Rcpts) {
		// Each stage of a transaction asks again for the same recipients:
		// derive their domains once.
		if !slices.Equal(e.lastRcpts, env.Envelope.Rcpts) || e.lastRcpts == nil {
			ds := make([]string, len(env.Envelope.Rcpts))
			for i, r := range env.Envelope.Rcpts {
				ds[i] = addrDomain(r)
			}
			e.lastRcpts, e.lastDomains = append(e.lastRcpts[:0:0], env.Envelope.Rcpts...), ds
		}
		env.Envelope.RcptDomains = e.lastDomains
	}
	env.Rcpt = ""
	if stage == StageRcpt {
		env.Rcpt = f.Rcpt
	}
	env.Score, env.Tags = f.Score, f.Tags
	env.DNSBL, env.Auth = f.DNSBL, f.Auth
	e.msg = nil
	env.Subject, env.From, env.FromDomain, env.MessageID, env.Text = "", "", "", "", ""
	env.To, env.Cc, env.Parts, env.Attachments, env.Defects = nil, nil, nil, nil, nil
	env.Size = 0
	env.Virus = Virus{}
	if stage == StageData {
		env.Virus = f.Virus
	}
	if stage != StageData || f.Msg == nil {
		return
	}
	m := f.Msg
	e.msg = m
	e.boxes.reset(m.Parts)
	u := e.set.uses
	env.Subject = m.Header("Subject")
	if u["From"] || u["FromDomain"] {
		env.From = firstAddr(m.Header("From"))
		env.FromDomain = addrDomain(env.From)
	}
	if u["To"] {
		env.To = addrList(m.HeaderAll("To"))
	}
	if u["Cc"] {
		env.Cc = addrList(m.HeaderAll("Cc"))
	}
	env.MessageID = strings.TrimSpace(m.Header("Message-ID"))
	env.Size = int(m.Size)
	env.Parts = m.Parts
	if u["Attachments"] {
		env.Attachments = m.Attachments()
	}
	env.Text = m.Text
	env.Defects = m.Defects
}

// Eval runs the rules of one stage over facts, in order. A rule matches
// when its when: is true (a rule with only strip: matches when it strips
// something); a matching enforce-mode rule adds its score, tags and edits,
// and a terminal action (accept, reject, tempfail, discard, quarantine)
// ends the evaluation. A monitor-mode rule that matches is only listed in
// Verdict.Monitor. A greylist rule defers (tempfail, 450 4.7.1 unless its
// reply says otherwise) the first attempt of each client-network/sender/
// recipient triple and any retry before its delay; a retry after the delay
// passes and the rule then neither matches nor stops anything. At
// StageRcpt the rules decide for f.Rcpt; at StageData f.Msg is read.
//
// Verdict.Action is ActionContinue when no terminal rule fired. A rule's
// runtime error is recorded in Verdict.Errors and, with rule_error
// tempfail (the default), ends the evaluation with 451 4.3.0; with
// continue the rule is skipped. A rule that fails changes nothing.
func (e *Evaluator) Eval(stage Stage, f *Facts) Verdict {
	v := Verdict{Action: ActionContinue}
	if int(stage) >= len(e.set.byStage) || len(e.set.byStage[stage]) == 0 {
		return v
	}
	e.prepare(stage, f)
	e.envAny, e.stale = e.env, false
	// The lists grow in the Evaluator's scratch, and the Verdict gets
	// copies of exactly their size: one allocation each, not one per growth.
	v.Rules, v.Tags, v.Edits.Headers, v.Edits.Strip = e.scratch.rules[:0], e.scratch.tags[:0], e.scratch.hdrs[:0], e.scratch.strip[:0]
	defer func() {
		e.msg, e.envAny = nil, nil
		e.env.Parts, e.env.Attachments, e.env.Tags = nil, nil, nil
		e.boxes.reset(nil)
		e.scratch.rules, e.scratch.tags, e.scratch.hdrs, e.scratch.strip = v.Rules, v.Tags, v.Edits.Headers, v.Edits.Strip
	}()
	e.run(stage, f, &v)
	v.Rules, v.Tags, v.Edits.Headers, v.Edits.Strip = own(v.Rules), own(v.Tags), own(v.Edits.Headers), own(v.Edits.Strip)
	return v
}

// verdictScratch is where Eval grows a Verdict's lists.
type verdictScratch struct {
	rules, tags    []string
	hdrs, ruleHdrs []HeaderEdit
	strip          []Strip
}

// own returns a copy of s that shares nothing with it (nil when empty).
func own[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

func (e *Evaluator) run(stage Stage, f *Facts, v *Verdict) {
	for _, r := range e.set.byStage[stage] {
		e.stateErr = nil
		done, err := e.apply(r, stage, f, v)
		if err != nil {
			v.Errors = append(v.Errors, fmt.Errorf("rule %s (%s:%d): %w", r.name, r.file, r.line, err))
			if e.stateErr != nil {
				// The shared state could not answer: a count or a triple
				// nobody checked must not let the message pass, so this
				// tempfails even with rule_error: continue
				// (docs/DESIGN.md "Wave 2 contract", Redis state).
				if !errors.Is(err, ErrState) {
					v.Errors[len(v.Errors)-1] = fmt.Errorf("rule %s (%s:%d): %w (%v)", r.name, r.file, r.line, e.stateErr, err)
				}
				v.Action, v.Reply, v.Rule = ActionTempfail, ReplyStateError, r.name
				return
			}
			if e.set.ruleErrorContinue {
				continue
			}
			v.Action, v.Reply, v.Rule = ActionTempfail, ReplyRuleError, r.name
			return
		}
		if done {
			return
		}
	}
}

// apply evaluates one rule and folds it into v; done is true when a
// terminal action fired. Everything a rule computes is computed before v
// changes, so a rule that fails changes nothing.
func (e *Evaluator) apply(r *rule, stage Stage, f *Facts, v *Verdict) (done bool, err error) {
	if e.stale && r.readsAcc {
		e.envAny, e.stale = e.env, false
	}
	if r.when != nil {
		out, err := e.vm.Run(r.when, e.envAny)
		if err != nil {
			return false, err
		}
		if b, _ := out.(bool); !b {
			return false, nil
		}
	}
	e.strips = e.strips[:0]
	if r.strip != nil {
		out, err := e.vm.Run(r.strip, e.envAny)
		if err != nil {
			return false, err
		}
		if err := e.collectParts(out); err != nil {
			return false, err
		}
		if r.when == nil && len(e.strips) == 0 {
			return false, nil // a strip-only rule matches when it strips something
		}
	}
	if r.monitor {
		v.Monitor = append(v.Monitor, r.name)
		return false, nil
	}
	// Expand templates first: an error must leave v untouched.
	hdrs := e.scratch.ruleHdrs[:0]
	defer func() { e.scratch.ruleHdrs = hdrs[:0] }()
	for _, h := range r.headers {
		he := HeaderEdit{Op: h.op, Name: h.name, Rule: r.name}
		if h.value != nil {
			s, err := e.expand(h.value)
			if err != nil {
				return false, fmt.Errorf("headers: %s: %w", h.name, err)
			}
			he.Value = s
		}
		hdrs = append(hdrs, he)
	}
	prefix := ""
	if r.subjectPrefix != nil {
		s, err := e.expand(r.subjectPrefix)
		if err != nil {
			return false, fmt.Errorf("subject_prefix: %w", err)
		}
		prefix = s
	}
	deferred := false
	if r.isGrey {
		deferred, err = e.greylist(r, stage, f)
		if err != nil {
			e.stateErr = err
			return false, err
		}
		if !deferred {
			return false, nil // passed: the rule lets the transaction go on
		}
	}

	v.Rules = append(v.Rules, r.name)
	v.Score += r.score
	for _, t := range r.tags {
		if !contains(v.Tags, t) {
			v.Tags = append(v.Tags, t)
		}
	}
	if r.score != 0 || len(r.tags) > 0 {
		e.env.Score, e.env.Tags, e.stale = f.Score+v.Score, v.Tags, true
		if len(f.Tags) > 0 {
			e.env.Tags = appendNew(append([]string(nil), f.Tags...), v.Tags...)
		}
	}
	v.Edits.Headers = append(v.Edits.Headers, hdrs...)
	if prefix != "" && !strings.Contains(v.Edits.SubjectPrefix, prefix) && !strings.HasPrefix(e.env.Subject, prefix) {
		v.Edits.SubjectPrefix += prefix
	}
	for _, p := range e.strips {
		if !stripped(v.Edits.Strip, p.Path) {
			v.Edits.Strip = append(v.Edits.Strip, Strip{Path: p.Path, Filename: p.Filename, Rule: r.name})
		}
	}
	for _, a := range r.rcptAdd {
		if !contains(v.Edits.RcptAdd, a) {
			v.Edits.RcptAdd = append(v.Edits.RcptAdd, a)
		}
	}
	for _, a := range r.rcptRemove {
		if !contains(v.Edits.RcptRemove, a) {
			v.Edits.RcptRemove = append(v.Edits.RcptRemove, a)
		}
	}
	if deferred {
		v.Action, v.Rule, v.Reply = ActionTempfail, r.name, r.reply
		if v.Reply.IsZero() {
			v.Reply = ReplyGreylisted
		}
		return true, nil
	}
	switch r.action {
	case ActionContinue:
		return false, nil
	case ActionReject:
		v.Reply = orDefault(r.reply, ReplyRejected)
	case ActionTempfail:
		v.Reply = orDefault(r.reply, ReplyTempfailed)
	default:
		v.Reply = r.reply
	}
	v.Action, v.Rule = r.action, r.name
	return true, nil
}

func orDefault(r, def Reply) Reply {
	if r.IsZero() {
		return def
	}
	return r
}

// greylist reports whether this attempt is deferred: at rcpt stage for the
// recipient being decided, at data stage for any recipient of the envelope.
// A Store error is returned wrapping ErrState.
func (e *Evaluator) greylist(r *rule, stage Stage, f *Facts) (bool, error) {
	grey := func(rcpt string) (bool, error) {
		d, err := e.st.Greylist(GreylistKey(f.Client.IP, f.Envelope.From, rcpt), r.greylist)
		if err != nil {
			return false, fmt.Errorf("greylist: %w", stateError(err))
		}
		return d, nil
	}
	if stage == StageRcpt {
		return grey(f.Rcpt)
	}
	if len(f.Envelope.Rcpts) == 0 {
		return grey("")
	}
	deferred := false
	for _, rc := range f.Envelope.Rcpts {
		d, err := grey(rc)
		if err != nil {
			return false, err
		}
		deferred = deferred || d // record every triple, then defer once
	}
	return deferred, nil
}

// collectParts turns a strip: result (a slice whose elements are parts)
// into e.strips.
func (e *Evaluator) collectParts(out any) error {
	switch ps := out.(type) {
	case []*mimeparse.Part:
		e.strips = append(e.strips, ps...)
		return nil
	case []any:
		for i, x := range ps {
			p, ok := x.(*mimeparse.Part)
			if !ok {
				return fmt.Errorf("strip: element %d is %T, not a part", i, x)
			}
			e.strips = append(e.strips, p)
		}
		return nil
	case nil:
		return nil
	}
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Slice {
		return fmt.Errorf("strip: result is %T, not a list of parts", out)
	}
	for i := 0; i < rv.Len(); i++ {
		p, ok := rv.Index(i).Interface().(*mimeparse.Part)
		if !ok {
			return fmt.Errorf("strip: element %d is %s, not a part", i, rv.Index(i).Type())
		}
		e.strips = append(e.strips, p)
	}
	return nil
}

// maxHeaderValue bounds an expanded header value or subject prefix, so the
// field stays under RFC 5322 §2.1.1's 998-byte line limit.
const maxHeaderValue = 900

// expand renders a template. A value from the message cannot break the
// header: control characters (CR, LF, NUL, ...) become spaces, and the
// result is cut at maxHeaderValue bytes on a character boundary.
func (e *Evaluator) expand(t *template) (string, error) {
	if len(t.progs) == 0 {
		return t.lit[0], nil
	}
	e.sb.Reset()
	for i, p := range t.progs {
		e.sb.WriteString(t.lit[i])
		out, err := e.vm.Run(p, e.envAny)
		if err != nil {
			return "", err
		}
		writeValue(&e.sb, out)
	}
	e.sb.WriteString(t.lit[len(t.lit)-1])
	return headerSafe(e.sb.String()), nil
}

// headerSafe makes s fit in one header line (see expand).
func headerSafe(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if (s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if !clean {
		b := []byte(s)
		for i, c := range b {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				b[i] = ' '
			}
		}
		s = string(b)
	}
	if len(s) > maxHeaderValue {
		cut := maxHeaderValue
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func writeValue(b *strings.Builder, v any) {
	switch x := v.(type) {
	case string:
		b.WriteString(x)
	case int:
		b.WriteString(strconv.Itoa(x))
	case float64:
		b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case nil:
	case []string:
		b.WriteString(strings.Join(x, ", "))
	case []any:
		for i, y := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeValue(b, y)
		}
	default:
		fmt.Fprint(b, x)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func stripped(ss []Strip, path string) bool {
	for _, s := range ss {
		if s.Path == path {
			return true
		}
	}
	return false
}

// firstAddr returns the address of the first mailbox of an address header:
// what is inside <...>, or the first word holding '@'.
func firstAddr(h string) string {
	list := splitAddrs(h)
	if len(list) == 0 {
		return ""
	}
	return list[0]
}

func addrList(hs []string) []string {
	var out []string
	for _, h := range hs {
		out = append(out, splitAddrs(h)...)
	}
	return out
}

// splitAddrs extracts the addresses of an RFC 5322 address list, skipping
// quoted display names and comments. It is lenient: a malformed entry yields
// what looks like an address in it, or nothing.
func splitAddrs(h string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	flush := func(s string) {
		if a := addrOf(s); a != "" {
			out = append(out, a)
		}
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == ',' && depth == 0:
			flush(h[start:i])
			start = i + 1
		}
	}
	flush(h[start:])
	return out
}

func addrOf(s string) string {
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			return strings.TrimSpace(s[i+1 : i+j])
		}
	}
	for _, w := range strings.Fields(s) {
		if strings.Contains(w, "@") && !strings.HasPrefix(w, "\"") && !strings.HasPrefix(w, "(") {
			return strings.Trim(w, "<>")
		}
	}
	return ""
}
