package rules

import (
	"fmt"
	"math"

	"github.com/expr-lang/expr/ast"
)

// CostBudget is the largest worst-case cost a rule may have, in steps
// (docs/policy.md "Cost of a rule"). expr's VM cannot be interrupted, so
// the work one message can cause is bounded here, at load: a rule whose
// estimate is above the budget does not load. A step takes about 10 ns
// (see regexCall), so the budget is about the default timeouts.policy
// (10s): a rule that cannot end within it does not load.
const CostBudget = 1_000_000_000

// MemoryBudget is the vm.VM's budget for one run: roughly the elements
// of the arrays, maps and ranges it may create (expr's default, set
// explicitly so that it stays).
const MemoryBudget = 1_000_000

// Bounds are the sizes the cost estimate assumes for the facts, taken from
// the configured limits. A zero field takes its default (DefaultBounds).
type Bounds struct {
	MimeParts      int64 // Parts, Attachments (limits.mime_parts)
	ArchiveEntries int64 // a part's .Archive (limits.archive_entries)
	HeaderBytes    int64 // one header block (limits.header_bytes): Subject, Header(), HeaderAll()
	TextBytes      int64 // Text
	MessageSize    int64 // Size, and any collection the estimate does not recognise (limits.message_size)
	Recipients     int64 // Envelope.Rcpts, Envelope.RcptDomains (limits.recipients)
}

// DefaultBounds are the bounds of the default limits (README "Configuration").
func DefaultBounds() Bounds {
	return Bounds{MimeParts: 1000, ArchiveEntries: 1000, HeaderBytes: 1 << 20, TextBytes: 256 << 10, MessageSize: 50 << 20, Recipients: 100}
}

func (b Bounds) withDefaults() Bounds {
	d := DefaultBounds()
	for _, f := range []struct{ v, def *int64 }{
		{&b.MimeParts, &d.MimeParts}, {&b.ArchiveEntries, &d.ArchiveEntries}, {&b.HeaderBytes, &d.HeaderBytes},
		{&b.TextBytes, &d.TextBytes}, {&b.MessageSize, &d.MessageSize}, {&b.Recipients, &d.Recipients},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return b
}

// A regular expression match costs more than a step: regexCall steps a
// call and regexByte steps a byte of a message-sized string. Measured on
// a 999-part message: a plain step (an element visited, a comparison)
// takes about 10 ns, `.ContentType matches "^(t|e|x)+/[a-z]+q$"` about
// 400 ns.
const (
	regexCall = 40
	regexByte = 4
)

// maxDefects bounds Defects and a part's .Defects: a closed vocabulary,
// each defect listed once.
const maxDefects = 256

// maxTags bounds Tags: the tags of the rules that matched.
const maxTags = 1024

// predicateBuiltins are expr's builtins whose second argument is run once
// per element of the first.
var predicateBuiltins = map[string]bool{
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true, "count": true,
	"sum": true, "find": true, "findIndex": true, "findLast": true, "findLastIndex": true,
	"groupBy": true, "sortBy": true, "reduce": true,
}

// scanBuiltins are builtins (and mailgate functions) that read their string
// arguments whole: they cost the size bound of each.
var scanBuiltins = map[string]bool{
	"trim": true, "trimPrefix": true, "trimSuffix": true, "upper": true, "lower": true, "split": true,
	"splitAfter": true, "replace": true, "repeat": true, "join": true, "indexOf": true, "lastIndexOf": true,
	"toJSON": true, "fromJSON": true, "toBase64": true, "fromBase64": true, "string": true,
	"domain": true, "rate": true, "subdomain": true,
}

// scanOperators are binary operators that read whole strings.
var scanOperators = map[string]bool{"contains": true, "matches": true, "+": true, "==": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true}

// costEstimator estimates an expression's worst case (docs/policy.md "Cost
// of a rule"): every AST node costs one step each time it runs; the body of
// a predicate runs once per element of its collection, so nested
// predicates multiply; an operation that reads a whole message-sized
// string (Text, Subject, Header(...)) costs that string's size bound.
type costEstimator struct {
	b     Bounds
	lists map[string]map[string]struct{}
	vars  map[string]int64 // let-bound collections → their bound
	loops []int64          // bounds of the enclosing predicates' collections, innermost last
}

// sat multiplies or adds without overflow.
func satMul(a, b float64) float64 { return math.Min(a*b, math.MaxFloat64/4) }

// cost returns the estimated steps of n run m times.
func (e *costEstimator) cost(n ast.Node, m float64) float64 {
	if n == nil {
		return 0
	}
	c := m // the node itself
	switch n := n.(type) {
	case *ast.BuiltinNode:
		if predicateBuiltins[n.Name] && len(n.Arguments) >= 2 {
			bound := e.bound(n.Arguments[0])
			inner := e.visits(n.Arguments[0], m)
			c += e.cost(n.Arguments[0], m) + inner
			e.loops = append(e.loops, max(bound, 1))
			c += e.cost(n.Arguments[1], inner)
			e.loops = e.loops[:len(e.loops)-1]
			for _, a := range n.Arguments[2:] {
				c += e.cost(a, m)
			}
			return c
		}
		for _, a := range n.Arguments {
			c += e.cost(a, m)
		}
		if scanBuiltins[n.Name] {
			c += satMul(m, float64(e.scanSize(n.Arguments)))
		}
		if n.Name == "repeat" && len(n.Arguments) == 2 {
			c += satMul(m, float64(e.size(n.Arguments[0])*e.value(n.Arguments[1])))
		}
		if n.Name == "sort" || n.Name == "uniq" || n.Name == "flatten" || n.Name == "concat" || n.Name == "reverse" || n.Name == "keys" || n.Name == "values" || n.Name == "join" {
			for _, a := range n.Arguments {
				c += satMul(m, float64(e.bound(a)))
			}
		}
		return c
	case *ast.CallNode:
		for _, a := range n.Arguments {
			c += e.cost(a, m)
		}
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && scanBuiltins[id.Value] {
			c += satMul(m, float64(e.scanSize(n.Arguments)))
		}
		return c + e.cost(n.Callee, m)
	case *ast.BinaryNode:
		c += e.cost(n.Left, m) + e.cost(n.Right, m)
		if scanOperators[n.Operator] {
			l, r := e.size(n.Left), e.size(n.Right)
			if n.Operator != "contains" && n.Operator != "matches" && n.Operator != "+" {
				l = min(l, r) // a comparison stops at the shorter string
			}
			c += satMul(m, float64(l+r))
			if n.Operator == "matches" {
				c += satMul(m, regexCall+regexByte*float64(l+r))
			}
		}
		if n.Operator == "in" {
			if _, ok := n.Right.(*ast.ArrayNode); !ok && e.arrayBound(n.Right) > 1 {
				c += e.visits(n.Right, m)
			}
		}
		return c
	case *ast.VariableDeclaratorNode:
		old, had := e.vars[n.Name]
		c += e.cost(n.Value, m)
		e.vars[n.Name] = e.bound(n.Value)
		c += e.cost(n.Expr, m)
		if had {
			e.vars[n.Name] = old
		} else {
			delete(e.vars, n.Name)
		}
		return c
	case *ast.UnaryNode:
		return c + e.cost(n.Node, m)
	case *ast.ChainNode:
		return c + e.cost(n.Node, m)
	case *ast.MemberNode:
		return c + e.cost(n.Node, m) + e.cost(n.Property, m)
	case *ast.SliceNode:
		return c + e.cost(n.Node, m) + e.cost(n.From, m) + e.cost(n.To, m)
	case *ast.PredicateNode:
		return c + e.cost(n.Node, m)
	case *ast.ConditionalNode:
		return c + e.cost(n.Cond, m) + e.cost(n.Exp1, m) + e.cost(n.Exp2, m)
	case *ast.SequenceNode:
		for _, x := range n.Nodes {
			c += e.cost(x, m)
		}
		return c
	case *ast.ArrayNode:
		for _, x := range n.Nodes {
			c += e.cost(x, m)
		}
		return c
	case *ast.MapNode:
		for _, x := range n.Pairs {
			c += e.cost(x, m)
		}
		return c
	case *ast.PairNode:
		return c + e.cost(n.Key, m) + e.cost(n.Value, m)
	}
	return c
}

func (e *costEstimator) scanSize(args []ast.Node) int64 {
	var s int64
	for _, a := range args {
		s += e.size(a)
	}
	return s
}

// arrayBound is the size of the right side of `in`: a literal array is
// turned into a map lookup by expr's optimizer (docs/DEVELOPING.md §3.4), as are lists.
func (e *costEstimator) arrayBound(n ast.Node) int64 {
	switch n := n.(type) {
	case *ast.ArrayNode:
		return 1
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "Lists" {
			return 1
		}
	}
	return e.bound(n)
}

// bound is the largest number of elements a collection-valued node can
// have; a collection the estimate does not recognise counts as
// MessageSize elements.
func (e *costEstimator) bound(n ast.Node) int64 {
	b := e.b
	switch n := n.(type) {
	case *ast.IdentifierNode:
		if v, ok := e.vars[n.Value]; ok {
			return v
		}
		switch n.Value {
		case "Parts", "Attachments":
			return b.MimeParts
		case "Defects":
			return maxDefects
		case "To", "Cc":
			return b.HeaderBytes / 4 // "a@b," at least
		case "Tags":
			return maxTags
		}
	case *ast.MemberNode:
		prop, ok := n.Property.(*ast.StringNode)
		if !ok {
			break
		}
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "Lists" {
			return int64(len(e.lists[prop.Value]))
		}
		switch prop.Value {
		case "Parts", "Attachments":
			return b.MimeParts
		case "Archive":
			return b.ArchiveEntries
		case "Names":
			return b.HeaderBytes / 8 // "; name=x" at least
		case "Defects":
			return maxDefects
		case "Fields":
			return b.HeaderBytes / 4
		case "Rcpts", "RcptDomains":
			return b.Recipients
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && id.Value == "HeaderAll" {
			return b.HeaderBytes / 4
		}
	case *ast.ArrayNode:
		return int64(len(n.Nodes))
	case *ast.BuiltinNode:
		switch n.Name {
		case "filter", "map", "sortBy", "sort", "reverse", "uniq", "take", "toPairs", "keys", "values", "groupBy":
			if len(n.Arguments) > 0 {
				return e.bound(n.Arguments[0])
			}
		case "split", "splitAfter":
			if len(n.Arguments) > 0 {
				return max(e.size(n.Arguments[0]), 1)
			}
		case "concat":
			var s int64
			for _, a := range n.Arguments {
				s += e.bound(a)
			}
			return s
		}
	case *ast.BinaryNode:
		if n.Operator == ".." {
			from, to := int64(0), e.value(n.Right)
			if l, ok := n.Left.(*ast.IntegerNode); ok {
				from = int64(l.Value)
			}
			if to < from {
				return 0
			}
			return to - from + 1
		}
	case *ast.SliceNode:
		return e.bound(n.Node)
	case *ast.ConditionalNode:
		return max(e.bound(n.Exp1), e.bound(n.Exp2))
	case *ast.ChainNode:
		return e.bound(n.Node)
	}
	return b.MessageSize
}

// visits is how many elements of the collection n are visited when n is
// iterated m times.
func (e *costEstimator) visits(n ast.Node, m float64) float64 {
	v := satMul(m, float64(e.bound(n)))
	if t := e.total(n); t > 0 && len(e.loops) > 0 {
		// A part's own list inside a loop over the parts: all the parts'
		// lists together are bounded by the message.
		outer := float64(e.loops[len(e.loops)-1])
		v = math.Min(v, satMul(m/outer, float64(t)))
	}
	return v
}

// total is, for a list read from the current element of a loop (.Names,
// .Fields), the bound of all the elements' lists together: they come from
// header bytes, so the message size bounds them; 0 for any other node.
func (e *costEstimator) total(n ast.Node) int64 {
	mn, ok := n.(*ast.MemberNode)
	if !ok {
		return 0
	}
	if _, ok := mn.Node.(*ast.PointerNode); !ok {
		return 0
	}
	prop, ok := mn.Property.(*ast.StringNode)
	if !ok {
		return 0
	}
	switch prop.Value {
	case "Names":
		return e.b.MessageSize / 8
	case "Fields":
		return e.b.MessageSize / 4
	}
	return 0
}

// value is the largest value an integer-valued node can have.
func (e *costEstimator) value(n ast.Node) int64 {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return int64(max(n.Value, 0))
	case *ast.IdentifierNode:
		if n.Value == "Size" {
			return e.b.MessageSize
		}
	case *ast.BuiltinNode:
		if n.Name == "len" && len(n.Arguments) == 1 {
			return max(e.bound(n.Arguments[0]), e.size(n.Arguments[0]))
		}
	}
	return e.b.MessageSize
}

// size is the size bound in bytes of a string-valued node that can be as
// large as the message's text or header; 0 for the short strings (a part's
// fields, list entries, literals), which count as one step per use.
func (e *costEstimator) size(n ast.Node) int64 {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "Text":
			return e.b.TextBytes
		case "Subject", "From", "MessageID":
			return e.b.HeaderBytes
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok {
			switch id.Value {
			case "Header":
				return e.b.HeaderBytes
			case "lower":
				if len(n.Arguments) == 1 {
					return e.size(n.Arguments[0])
				}
			}
		}
	case *ast.BuiltinNode:
		switch n.Name {
		case "lower", "upper", "trim", "trimPrefix", "trimSuffix", "replace", "string", "toJSON", "toBase64", "fromBase64":
			if len(n.Arguments) > 0 {
				return e.size(n.Arguments[0])
			}
		case "join":
			if len(n.Arguments) > 0 && e.bound(n.Arguments[0]) > 0 {
				return e.b.HeaderBytes
			}
		case "repeat":
			if len(n.Arguments) == 2 {
				return max(e.size(n.Arguments[0]), 1) * e.value(n.Arguments[1])
			}
		}
	case *ast.BinaryNode:
		if n.Operator == "+" {
			return e.size(n.Left) + e.size(n.Right)
		}
	case *ast.ConditionalNode:
		return max(e.size(n.Exp1), e.size(n.Exp2))
	case *ast.ChainNode:
		return e.size(n.Node)
	}
	return 0
}

// formatCost prints a cost estimate for messages: "4.0e+09".
func formatCost(c float64) string {
	if c < 1e6 {
		return fmt.Sprintf("%.0f", c)
	}
	return fmt.Sprintf("%.1e", c)
}
