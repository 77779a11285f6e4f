package rules

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// maxExprNodes bounds the size of one expression (docs/DEVELOPING.md §3.6).
const maxExprNodes = 10000

// compiler validates and compiles the rules of one set, file by file.
type compiler struct {
	s     *Set
	le    *LoadError
	funcs []expr.Option
	file  string
	src   []byte

	readsAcc bool    // an expression of the current rule reads Score or Tags
	cost     float64 // estimated worst case of the current rule's expressions (cost.go)
}

func newCompiler(s *Set, le *LoadError) *compiler {
	return &compiler{s: s, le: le, funcs: exprFuncs(s.prefixes)}
}

// at reports a problem at a 1-based position of the current file.
func (c *compiler) at(line, col int, format string, args ...any) {
	c.le.addSnippet(c.file, line, col, fmt.Sprintf(format, args...), c.src)
}

func (c *compiler) atScalar(s scalar, format string, args ...any) {
	c.at(s.Line, s.Column, format, args...)
}

// loadFile decodes and compiles one policy file.
func (c *compiler) loadFile(name string, data []byte, seen map[string]string) *policyFile {
	c.file, c.src = name, data
	pol := decodePolicy(name, data, c.le)
	if pol == nil {
		return nil
	}
	pf := &policyFile{name: name, tests: pol.Tests}
	for i := range pol.Rules {
		if r := c.rule(&pol.Rules[i], seen); r != nil {
			pf.rules = append(pf.rules, r)
		}
	}
	c.checkTests(pol.Tests)
	return pf
}

var ruleNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

var actionNames = []string{"accept", "reject", "tempfail", "discard", "quarantine", "continue", "greylist"}

// str returns a scalar's string value, reporting a non-scalar.
func (c *compiler) str(rname, field string, s scalar) (string, bool) {
	if !s.Set {
		return "", false
	}
	if s.Kind != yaml.ScalarNode {
		c.atScalar(s, "%s%s: expected a string", rulePrefix(rname), field)
		return "", false
	}
	return s.Value, true
}

func rulePrefix(name string) string {
	if name == "" {
		return ""
	}
	return "rule " + name + ": "
}

// firstPos returns the position of the first field set in a rule, for
// problems about the rule as a whole.
func (ry *ruleYAML) firstPos() (int, int) {
	best := scalar{Line: 1 << 30}
	for _, s := range []scalar{ry.Name, ry.Description, ry.Stage, ry.When, ry.Action, ry.Reply, ry.Strip, ry.SubjectPrefix, ry.Score, ry.Mode} {
		if s.Set && s.Line < best.Line {
			best = s
		}
	}
	if best.Line == 1<<30 {
		return 1, 1
	}
	return best.Line, best.Column
}

func (c *compiler) rule(ry *ruleYAML, seen map[string]string) *rule {
	nerr := len(c.le.Problems)
	c.readsAcc, c.cost = false, 0
	r := &rule{action: ActionContinue, file: c.file}
	name, ok := c.str("", "name", ry.Name)
	switch {
	case !ry.Name.Set:
		l, col := ry.firstPos()
		c.at(l, col, "rule without a name: every rule needs a unique name:")
	case !ok:
	case !ruleNameRE.MatchString(name):
		c.atScalar(ry.Name, "rule name %q: use letters, digits, '.', '_' and '-'", name)
	default:
		if prev, dup := seen[name]; dup {
			c.atScalar(ry.Name, "rule name %s is already used at %s", name, prev)
		} else {
			seen[name] = fmt.Sprintf("%s:%d", c.file, ry.Name.Line)
		}
	}
	r.name = name
	r.line, _ = ry.firstPos()
	p := rulePrefix(name)
	c.str(name, "description", ry.Description)

	r.stage = StageData
	if v, ok := c.str(name, "stage", ry.Stage); ok {
		found := false
		for i, sn := range stageNames {
			if v == sn {
				r.stage, found = Stage(i), true
			}
		}
		if !found {
			c.atScalar(ry.Stage, "%sstage: %q is not one of %s%s", p, v, strings.Join(stageNames[:], ", "), DidYouMean(v, stageNames[:]))
		}
	}
	if v, ok := c.str(name, "mode", ry.Mode); ok {
		switch v {
		case "enforce":
		case "monitor":
			r.monitor = true
		default:
			c.atScalar(ry.Mode, "%smode: %q is not one of enforce, monitor%s", p, v, DidYouMean(v, []string{"enforce", "monitor"}))
		}
	}
	if v, ok := c.str(name, "action", ry.Action); ok {
		switch v {
		case "greylist":
			r.isGrey = true
			r.greylist = 5 * time.Minute
		case "accept", "reject", "tempfail", "discard", "quarantine", "continue":
			r.action = Action(v)
		default:
			c.atScalar(ry.Action, "%saction: %q is not one of %s%s", p, v, strings.Join(actionNames, ", "), DidYouMean(v, actionNames))
		}
	}
	if ry.Greylist != nil {
		if !r.isGrey {
			c.atScalar(ry.Greylist.Delay, "%sgreylist: only for action: greylist", p)
		}
		if v, ok := c.str(name, "greylist: delay", ry.Greylist.Delay); ok {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				c.atScalar(ry.Greylist.Delay, "%sgreylist: delay: %q is not a duration such as 5m", p, v)
			} else {
				r.greylist = d
			}
		}
	}
	if r.isGrey && r.stage != StageRcpt && r.stage != StageData {
		c.atScalar(ry.Action, "%saction: greylist needs the recipients: use stage rcpt or data, not %s", p, r.stage)
	}
	if v, ok := c.str(name, "reply", ry.Reply); ok {
		rep, err := parseReply(v)
		if err == nil {
			err = replyFits(rep, r.action, r.isGrey)
		}
		if err != nil {
			c.at(ry.Reply.Line, ry.Reply.Column+quoteAdj(ry.Reply.Style), "%sreply: %v", p, err)
		} else {
			r.reply = rep
		}
	}

	if src, ok := c.str(name, "when", ry.When); ok {
		r.when = c.compile(name, "when", ry.When, src, 0, r.stage, kindBool)
	}
	if src, ok := c.str(name, "strip", ry.Strip); ok {
		if r.stage != StageData {
			c.atScalar(ry.Strip, "%sstrip: parts can only be stripped at stage data, not %s", p, r.stage)
		} else {
			r.strip = c.compile(name, "strip", ry.Strip, src, 0, r.stage, kindSlice)
		}
	}
	c.edits(r, ry)
	if v, ok := c.str(name, "score", ry.Score); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || (ry.Score.Tag != "!!int" && ry.Score.Tag != "!!float") {
			c.atScalar(ry.Score, "%sscore: %q is not a number", p, v)
		} else {
			r.score = f
		}
	}
	for _, t := range ry.Tags {
		if v, ok := c.str(name, "tags", t); ok {
			if v == "" || strings.ContainsAny(v, " \t\r\n,") {
				c.atScalar(t, "%stags: %q: a tag is one word", p, v)
				continue
			}
			r.tags = append(r.tags, v)
		}
	}
	if len(c.le.Problems) == nerr && c.cost > CostBudget {
		b := c.s.cfg.Bounds.withDefaults()
		line, col := ry.firstPos()
		field := "when"
		switch {
		case ry.When.Set:
			line, col = scalarPos(c.src, ry.When, 0)
		case ry.Strip.Set:
			line, col, field = ry.Strip.Line, ry.Strip.Column+quoteAdj(ry.Strip.Style), "strip"
		}
		c.at(line, col, "%s%s: estimated worst-case cost %s steps is over the budget of %s "+
			"(mime_parts %d, archive_entries %d): nested predicates multiply, see docs/policy.md \"Cost of a rule\"",
			p, field, formatCost(c.cost), formatCost(CostBudget), b.MimeParts, b.ArchiveEntries)
	}
	if len(c.le.Problems) > nerr {
		return nil
	}
	r.readsAcc = c.readsAcc
	return r
}

// edits compiles headers, subject_prefix and recipients.
func (c *compiler) edits(r *rule, ry *ruleYAML) {
	p := rulePrefix(r.name)
	if h := ry.Headers; h != nil {
		for _, op := range []struct {
			name string
			m    nodeMap
		}{{"add", h.Add}, {"set", h.Set}} {
			pairs, bad := op.m.pairs()
			if bad != nil {
				c.at(bad.Line, bad.Column, "%sheaders: %s: expected a mapping of header name to value", p, op.name)
				continue
			}
			for _, kv := range pairs {
				if !validFieldName(kv[0].Value) {
					c.atScalar(kv[0], "%sheaders: %s: %q is not a header field name", p, op.name, kv[0].Value)
					continue
				}
				t := c.template(r.name, "headers: "+op.name+": "+kv[0].Value, kv[1], r.stage)
				r.headers = append(r.headers, headerOp{op: op.name, name: kv[0].Value, value: t})
			}
		}
		for _, n := range h.Remove {
			if v, ok := c.str(r.name, "headers: remove", n); ok {
				if !validFieldName(v) {
					c.atScalar(n, "%sheaders: remove: %q is not a header field name", p, v)
					continue
				}
				r.headers = append(r.headers, headerOp{op: "remove", name: v})
			}
		}
		if len(r.headers) > 0 && r.stage != StageData {
			l, col := ry.firstPos()
			c.at(l, col, "%sheaders: can only be edited at stage data, not %s", p, r.stage)
		}
	}
	if ry.SubjectPrefix.Set {
		if r.stage != StageData {
			c.atScalar(ry.SubjectPrefix, "%ssubject_prefix: only at stage data, not %s", p, r.stage)
		} else if _, ok := c.str(r.name, "subject_prefix", ry.SubjectPrefix); ok {
			r.subjectPrefix = c.template(r.name, "subject_prefix", ry.SubjectPrefix, r.stage)
		}
	}
	if rc := ry.Recipients; rc != nil {
		for _, a := range rc.Add {
			if v, ok := c.str(r.name, "recipients: add", a); ok {
				if !plausibleAddr(v) {
					c.atScalar(a, "%srecipients: add: %q is not an address", p, v)
					continue
				}
				r.rcptAdd = append(r.rcptAdd, v)
			}
		}
		for _, a := range rc.Remove {
			if v, ok := c.str(r.name, "recipients: remove", a); ok {
				if !plausibleAddr(v) {
					c.atScalar(a, "%srecipients: remove: %q is not an address", p, v)
					continue
				}
				r.rcptRemove = append(r.rcptRemove, v)
			}
		}
		if (len(rc.Add) > 0 || len(rc.Remove) > 0) && r.stage < StageMail {
			l, col := ry.firstPos()
			c.at(l, col, "%srecipients: only from stage mail on, not %s", p, r.stage)
		}
	}
}

func validFieldName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 || s[i] == ':' {
			return false
		}
	}
	return true
}

func plausibleAddr(s string) bool {
	i := strings.LastIndexByte(s, '@')
	return i > 0 && i < len(s)-1 && !strings.ContainsAny(s, " \t\r\n<>,")
}

type exprKind int

const (
	kindBool exprKind = iota
	kindSlice
	kindAny
)

// compile compiles src (found at byte offset off of the scalar's value)
// against *Env, maps errors into the YAML file and walks the AST for the
// stage and list checks.
func (c *compiler) compile(rname, field string, s scalar, src string, off int, stage Stage, kind exprKind) *vm.Program {
	if strings.TrimSpace(src) == "" {
		c.atScalar(s, "%s%s: empty expression", rulePrefix(rname), field)
		return nil
	}
	opts := []expr.Option{expr.Env(Env{})}
	switch kind {
	case kindBool:
		opts = append(opts, expr.AsBool())
	case kindSlice:
		opts = append(opts, expr.AsKind(reflect.Slice))
	}
	opts = append(opts, expr.MaxNodes(maxExprNodes))
	opts = append(opts, c.funcs...)
	prog, err := compileSafe(src, opts)
	if err != nil {
		roff, msg := 0, err.Error()
		var fe *file.Error
		if errors.As(err, &fe) {
			msg = strings.TrimSpace(fe.Message)
			if fe.Snippet != "" {
				roff = fe.From
			}
		}
		// expr reports a panic inside a function it runs at compile time
		// (a constant regular expression that does not compile) with the
		// goroutine's stack: the position and the message say enough.
		if i := strings.Index(msg, "\ngoroutine "); i >= 0 {
			msg = strings.TrimSpace(msg[:i])
		}
		if kind == kindBool && strings.HasPrefix(msg, "expected bool") {
			msg = "must be true or false: " + msg
		}
		if kind == kindSlice && strings.HasPrefix(msg, "expected slice") {
			msg = "must yield a list of parts (e.g. filter(Attachments, .Macros)): " + msg
		}
		line, col := scalarPos(c.src, s, off+runeToByte(src, roff))
		c.at(line, col, "%s%s: %s", rulePrefix(rname), field, exprHint(msg))
		return nil
	}
	if !c.walk(rname, field, s, src, off, stage) {
		return nil
	}
	if kind == kindAny {
		if t := prog.Node().Type(); !templateType(t) {
			line, col := scalarPos(c.src, s, off)
			c.at(line, col, "%s%s: {{ %s }} is a %s: a template gives a string, a number, true/false or a list of strings (e.g. {{ len(Attachments) }}, {{ join(map(Attachments, .Filename), \", \") }})",
				rulePrefix(rname), field, strings.TrimSpace(src), typeName(t))
			return nil
		}
	}
	return prog
}

// templateType reports whether a {{ expr }} of type t writes a readable
// value into a header: a string, number, bool or list of strings. A type
// the checker does not know (an interface: a ternary with nil, a map()
// result) passes, and writeValue writes it as best it can.
func templateType(t reflect.Type) bool {
	if t == nil {
		return true
	}
	switch t.Kind() {
	case reflect.Interface, reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	case reflect.Slice, reflect.Array:
		e := t.Elem()
		return e.Kind() == reflect.String || e.Kind() == reflect.Interface
	}
	return false
}

// typeName names a type as a policy author sees it.
func typeName(t reflect.Type) string {
	s := t.String()
	s = strings.ReplaceAll(s, "*mimeparse.Part", "Part")
	s = strings.ReplaceAll(s, "inspect.Entry", "ArchiveEntry")
	return s
}

// compileSafe compiles (with the part-field rewrite, partfields.go),
// turning a panic inside expr into an error.
func compileSafe(src string, opts []expr.Option) (p *vm.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("expression compiler failed: %v", r)
		}
	}()
	return compilePatched(src, opts)
}

// walk checks what the checker cannot: identifiers used at the wrong stage,
// lists the configuration does not define, constant arguments of cidr() and
// rate(). It records every top-level name used in Set.uses.
func (c *compiler) walk(rname, field string, s scalar, src string, off int, stage Stage) bool {
	tree, err := parser.Parse(src)
	if err != nil {
		return true // the checker accepted it; nothing more to say
	}
	w := &stageWalker{c: c, stage: stage}
	ast.Walk(&tree.Node, w)
	ce := &costEstimator{b: c.s.cfg.Bounds.withDefaults(), lists: c.s.lists, vars: map[string]int64{}}
	c.cost += ce.cost(tree.Node, 1)
	for _, is := range w.issues {
		line, col := scalarPos(c.src, s, off+runeToByte(src, is.from))
		c.at(line, col, "%s%s: %s", rulePrefix(rname), field, is.msg)
	}
	return len(w.issues) == 0
}

type walkIssue struct {
	from int
	msg  string
}

type stageWalker struct {
	c      *compiler
	stage  Stage
	issues []walkIssue
}

func (w *stageWalker) add(n ast.Node, format string, args ...any) {
	w.issues = append(w.issues, walkIssue{from: n.Location().From, msg: fmt.Sprintf(format, args...)})
}

func (w *stageWalker) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		w.c.s.uses[n.Value] = true
		if n.Value == "Score" || n.Value == "Tags" || n.Value == "$env" {
			w.c.readsAcc = true
		}
		switch {
		case bodyFacts[n.Value] && w.stage != StageData:
			w.add(n, "%s is a body fact, only known at stage data (this rule runs at stage %s)", n.Value, w.stage)
		case headerFacts[n.Value] && w.stage != StageData:
			w.add(n, "%s reads the message header, only known at stage data (this rule runs at stage %s)", n.Value, w.stage)
		case n.Value == "DNSBL" && !w.c.s.cfg.Facts.All && len(w.c.s.cfg.Facts.DNSBL) == 0:
			w.add(n, "DNSBL needs the dnsbl: section of the configuration (no blocklist is configured)")
		case lookupFacts[n.Value] > w.stage:
			w.add(n, "%s is only known from stage %s on (this rule runs at stage %s)", n.Value, lookupFacts[n.Value], w.stage)
		case n.Value == "Rcpt" && w.stage != StageRcpt:
			w.add(n, "Rcpt is the recipient being decided, only set at stage rcpt (this rule runs at stage %s); use Envelope.Rcpts", w.stage)
		}
	case *ast.MemberNode:
		id, ok1 := n.Node.(*ast.IdentifierNode)
		prop, ok2 := n.Property.(*ast.StringNode)
		if ok2 {
			w.c.s.usesProp[prop.Value] = true
		} else if _, index := n.Property.(*ast.IntegerNode); !index {
			w.c.s.anyProp = true // p[name]: any member may be read
		}
		if from, ok := memberFacts[memberName(id, prop)]; ok && w.stage < from {
			w.add(n.Property, "%s is only known from stage %s on (this rule runs at stage %s)", memberName(id, prop), from, w.stage)
		}
		if msg := w.c.s.checkLookupFact(memberName(id, prop), w.stage); msg != "" {
			w.add(n.Property, "%s", msg)
		}
		if ok1 && ok2 && id.Value == "Lists" {
			if _, ok := w.c.s.lists[prop.Value]; !ok {
				var names []string
				for k := range w.c.s.lists {
					names = append(names, k)
				}
				w.add(n.Property, "list %s is not configured (config lists:)%s", prop.Value, DidYouMean(prop.Value, names))
			}
		}
	case *ast.BuiltinNode:
		switch n.Name {
		case "get": // get(p, "SHA256") reads a member as p.SHA256 does
			if len(n.Arguments) == 2 {
				if prop, ok := n.Arguments[1].(*ast.StringNode); ok {
					w.c.s.usesProp[prop.Value] = true
					return
				}
			}
			w.c.s.anyProp = true
		case "toJSON", "string", "keys", "values", "toPairs":
			w.c.s.anyProp = true // may show every member of a value
		}
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || len(n.Arguments) != 2 {
			return
		}
		arg, ok := n.Arguments[1].(*ast.StringNode)
		if !ok {
			return
		}
		switch id.Value {
		case "cidr":
			if _, err := parsePrefix(arg.Value); err != nil {
				w.add(arg, "cidr: %q is not a network such as 10.0.0.0/8", arg.Value)
			}
		case "rate":
			if d, err := time.ParseDuration(arg.Value); err != nil || d <= 0 {
				w.add(arg, "rate: window %q is not a duration such as 1m or 1h", arg.Value)
			}
		}
	}
}

// template compiles a value with {{ expr }} holes.
func (c *compiler) template(rname, field string, s scalar, stage Stage) *template {
	v := s.Value
	t := &template{}
	pos := 0
	for {
		i := strings.Index(v[pos:], "{{")
		if i < 0 {
			t.lit = append(t.lit, v[pos:])
			break
		}
		i += pos
		j := strings.Index(v[i+2:], "}}")
		if j < 0 {
			line, col := scalarPos(c.src, s, i)
			c.at(line, col, "%s%s: {{ without }}", rulePrefix(rname), field)
			return nil
		}
		j += i + 2
		t.lit = append(t.lit, v[pos:i])
		prog := c.compile(rname, field, s, v[i+2:j], i+2, stage, kindAny)
		t.progs = append(t.progs, prog)
		pos = j + 2
	}
	if lit := strings.Join(t.lit, ""); headerSafe(lit) != lit {
		c.atScalar(s, "%s%s: a header value is one line of at most %d bytes, without control characters", rulePrefix(rname), field, maxHeaderValue)
		return nil
	}
	return t
}

func quoteAdj(st yaml.Style) int {
	if st&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		return 1
	}
	return 0
}

// scalarPos maps a byte offset in a scalar's value to a 1-based position in
// the YAML source (docs/DEVELOPING.md §3.8): quoted scalars start one column after the
// quote; a literal or folded block starts on the line after its indicator,
// at the block's indentation. Offsets past a line break of a flow scalar
// (folded by YAML) are reported at the scalar's start.
func scalarPos(src []byte, s scalar, off int) (int, int) {
	if off < 0 || off > len(s.Value) {
		off = 0
	}
	before := s.Value[:off]
	nl := strings.Count(before, "\n")
	lastNL := strings.LastIndexByte(before, '\n')
	colInLine := utf8.RuneCountInString(before[lastNL+1:])
	if s.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		indent := blockIndent(src, s.Line+1)
		if s.Style&yaml.FoldedStyle != 0 && nl > 0 {
			return s.Line + 1, indent
		}
		return s.Line + 1 + nl, indent + colInLine
	}
	if nl > 0 {
		return s.Line, s.Column
	}
	return s.Line, s.Column + quoteAdj(s.Style) + colInLine
}

// blockIndent returns the 1-based column where a block scalar's text starts:
// the indentation of its first non-blank line from line on.
func blockIndent(src []byte, line int) int {
	lines := strings.Split(string(src), "\n")
	for l := line; l <= len(lines); l++ {
		text := strings.TrimRight(lines[l-1], "\r")
		if strings.TrimSpace(text) != "" {
			return len(text) - len(strings.TrimLeft(text, " ")) + 1
		}
	}
	return 1
}

func runeToByte(s string, r int) int {
	if r <= 0 {
		return 0
	}
	n := 0
	for i := range s {
		if n == r {
			return i
		}
		n++
	}
	return len(s)
}
