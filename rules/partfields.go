package rules

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker/nature"
	"github.com/expr-lang/expr/vm"

	"mailgate/mimeparse"
)

// Reading a field of a part costs an allocation in expr: OpFetchField reads
// it through reflect, and a field behind a pointer (our []*mimeparse.Part)
// is addressable, so reflect copies it to the heap to box it, on every
// read; an archive entry is copied whole each time a loop visits it. With
// 50 rules that was 2/3 of the allocations of an Eval.
//
// So a second compilation of each expression that reads part or archive-
// entry fields (the first one, unpatched, is the one whose errors and
// types the user sees) patches every such read, `p.Ext`, into a call:
//   - a bool field into partBool(p, fieldIndex), a constant function
//     (pushed, not loaded from the Env) returning a bool, which boxes for
//     free;
//   - a string field compared with a constant (`.Ext == "exe"`,
//     `.Ext in [...]`, startsWith, matches, ...) into partBool(p, test);
//   - any other field into PartAny(p, fieldIndex), an Evaluator closure in
//     the Env returning the value boxed once per message and part, and an
//     archive walked by a builtin as a []any of boxed entries, which expr
//     loops over without reflection and whose fields it reads in place.
// func(any, any) bool and func(any, any) any are signatures expr calls
// without reflection (OpCallTyped).

// patchPartFields turns the patch on; tests turn it off to compare.
var patchPartFields = true

const (
	partAnyName = "mailgate part any" // not identifiers: no policy can name them
	rateAnyName = "mailgate rate"
)

var (
	partPtrType = reflect.TypeOf(&mimeparse.Part{})
	partType    = partPtrType.Elem()
	entryType   = reflect.TypeOf(mimeparse.ArchiveEntry{})
	boolType    = reflect.TypeOf(true)
	intType     = reflect.TypeOf(0)
	partAnyType = reflect.TypeOf(func(part, field any) any { return nil })
	nPartFields = partType.NumField()
	archiveIdx  = fieldIndex(partType, "Archive")
)

// directFuncs are the helpers of exprFuncs with a func(string) string twin.
var directFuncs = map[string]func(string) string{"lower": strings.ToLower, "domain": addrDomain}

// archiveList is the field index partAny takes for "the part's archive as a
// []any of boxed entries", what a builtin's collection argument gets.
const archiveList = -1

func fieldIndex(t reflect.Type, name string) int {
	f, ok := t.FieldByName(name)
	if !ok || len(f.Index) != 1 {
		panic("rules: no field " + name + " in " + t.String())
	}
	return f.Index[0]
}

// partFieldPatcher rewrites reads of part and archive-entry fields (see
// above). It relies on the node types of the checker's first pass, which
// expr runs before the patchers, and on ast.Walk visiting children first.
type partFieldPatcher struct{ n int }

func (p *partFieldPatcher) Visit(node *ast.Node) {
	if c, ok := (*node).(*ast.CallNode); ok {
		// rate(key, window): see Evaluator.rateAny.
		if id, ok := c.Callee.(*ast.IdentifierNode); ok && id.Value == "rate" && len(c.Arguments) == 2 {
			// A new CallNode: the checker keeps the type an old one has (int)
			// and would not look at the new callee's.
			ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: rateAnyName}, Arguments: c.Arguments})
			p.n++
		}
		// lower(s), domain(s): expr.Function calls go through a []any of
		// arguments; a func(string) string constant is called directly.
		if id, ok := c.Callee.(*ast.IdentifierNode); ok && len(c.Arguments) == 1 && directFuncs[id.Value] != nil {
			ast.Patch(node, &ast.CallNode{Callee: &ast.ConstantNode{Value: directFuncs[id.Value]}, Arguments: c.Arguments})
			p.n++
		}
		return
	}
	if b, ok := (*node).(*ast.BuiltinNode); ok && len(b.Arguments) > 0 {
		// any(.Archive, ...) and friends: walk a []any of boxed entries.
		if c, ok := b.Arguments[0].(*ast.CallNode); ok && len(c.Arguments) == 2 {
			id, ok1 := c.Callee.(*ast.IdentifierNode)
			fi, ok2 := c.Arguments[1].(*ast.IntegerNode)
			if ok1 && ok2 && id.Value == partAnyName && fi.Value == archiveIdx {
				fi.Value = archiveList
				c.SetNature(nature.Nature{}) // a []any, not the field's type: let the checker say
			}
		}
		return
	}
	if b, ok := (*node).(*ast.BinaryNode); ok {
		var part ast.Node
		var test any
		if t := strTestOf(b); t != nil {
			part, test = b.Left.(*ast.CallNode).Arguments[0], t
		} else if t, p := lenTestOf(b); t != nil {
			part, test = p, t
		}
		if test != nil {
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.ConstantNode{Value: partBool},
				Arguments: []ast.Node{part, &ast.ConstantNode{Value: test}},
			})
		}
		return
	}
	n, ok := (*node).(*ast.MemberNode)
	if !ok || n.Optional || n.Method {
		return
	}
	prop, ok := n.Property.(*ast.StringNode)
	if !ok || n.Node.Type() == nil {
		return
	}
	var st reflect.Type
	switch t := n.Node.Type(); t {
	case partPtrType, partType:
		st = partType
	case entryType:
		st = entryType
	default:
		return
	}
	f, ok := st.FieldByName(prop.Value)
	if !ok || len(f.Index) != 1 || !f.IsExported() {
		return // a method (.Header), or an unknown name the checker reported
	}
	idx := &ast.IntegerNode{Value: f.Index[0]}
	idx.SetType(intType)
	call := &ast.CallNode{Arguments: []ast.Node{n.Node, idx}}
	if f.Type == boolType {
		call.Callee = &ast.ConstantNode{Value: partBool} // needs no Evaluator: no Env field to load
	} else {
		call.Callee = &ast.IdentifierNode{Value: partAnyName}
		if _, ok := n.Node.(*ast.PointerNode); ok {
			// `#.Ext`: keep the field's type. expr's checker takes a
			// call's type when one is set (and then leaves the call
			// alone: so the callee's type is set too, for OpCallTyped),
			// and the compiled code stays typed (OpEqualString, no
			// OpDeref). partAny returns exactly that type, except for an
			// archive that a builtin walks (archiveList, below), which
			// gets its type back from the checker.
			call.Callee.SetType(partAnyType)
			call.SetType(f.Type)
		}
	}
	ast.Patch(node, call)
	p.n++
}

// strTest is a string field of a part or entry compared with a constant:
// `.Ext == "exe"`, `.Ext in ["js", "vbs"]`, `.Filename matches "..."`
// become one partBool call (children are patched first: b.Left is already
// a partAny call).
type strTest struct {
	field int
	op    string
	s     string
	set   map[string]struct{}
	re    *regexp.Regexp
}

func strTestOf(b *ast.BinaryNode) *strTest {
	c, ok := b.Left.(*ast.CallNode)
	if !ok || len(c.Arguments) != 2 {
		return nil
	}
	id, ok1 := c.Callee.(*ast.IdentifierNode)
	fi, ok2 := c.Arguments[1].(*ast.IntegerNode)
	if !ok1 || !ok2 || id.Value != partAnyName || fi.Value < 0 {
		return nil
	}
	var st reflect.Type
	switch c.Arguments[0].Type() {
	case partPtrType, partType:
		st = partType
	case entryType:
		st = entryType
	default:
		return nil
	}
	if fi.Value >= st.NumField() || st.Field(fi.Value).Type.Kind() != reflect.String {
		return nil
	}
	t := &strTest{field: fi.Value, op: b.Operator}
	switch b.Operator {
	case "==", "!=", "startsWith", "endsWith", "contains", "matches":
		r, ok := b.Right.(*ast.StringNode)
		if !ok {
			return nil
		}
		t.s = r.Value
		if b.Operator == "matches" {
			re, err := regexp.Compile(r.Value)
			if err != nil {
				return nil // the checker reported it
			}
			t.re = re
		}
	case "in":
		arr, ok := b.Right.(*ast.ArrayNode)
		if !ok || len(arr.Nodes) == 0 {
			return nil
		}
		t.set = make(map[string]struct{}, len(arr.Nodes))
		for _, n := range arr.Nodes {
			sn, ok := n.(*ast.StringNode)
			if !ok {
				return nil
			}
			t.set[sn.Value] = struct{}{}
		}
	default:
		return nil
	}
	return t
}

// lenTest is `len(p.Field) > 0` (==, !=, <, <=, >, >=), with p a part or
// entry and Field a slice or string.
type lenTest struct {
	field int
	op    string
	n     int
}

// lenTestOf returns the test and the part node, or nil.
func lenTestOf(b *ast.BinaryNode) (*lenTest, ast.Node) {
	l, ok := b.Left.(*ast.BuiltinNode)
	r, ok2 := b.Right.(*ast.IntegerNode)
	if !ok || !ok2 || l.Name != "len" || len(l.Arguments) != 1 {
		return nil, nil
	}
	switch b.Operator {
	case "==", "!=", "<", "<=", ">", ">=":
	default:
		return nil, nil
	}
	c, ok := l.Arguments[0].(*ast.CallNode)
	if !ok || len(c.Arguments) != 2 {
		return nil, nil
	}
	id, ok1 := c.Callee.(*ast.IdentifierNode)
	fi, ok2 := c.Arguments[1].(*ast.IntegerNode)
	if !ok1 || !ok2 || id.Value != partAnyName {
		return nil, nil
	}
	f := fi.Value
	if f == archiveList {
		f = archiveIdx
	}
	var st reflect.Type
	switch c.Arguments[0].Type() {
	case partPtrType, partType:
		st = partType
	case entryType:
		st = entryType
	default:
		return nil, nil
	}
	if f < 0 || f >= st.NumField() {
		return nil, nil
	}
	if k := st.Field(f).Type.Kind(); k != reflect.Slice && k != reflect.String {
		return nil, nil
	}
	return &lenTest{field: f, op: b.Operator, n: r.Value}, c.Arguments[0]
}

func (t *lenTest) test(n int) bool {
	switch t.op {
	case "==":
		return n == t.n
	case "!=":
		return n != t.n
	case "<":
		return n < t.n
	case "<=":
		return n <= t.n
	case ">":
		return n > t.n
	case ">=":
		return n >= t.n
	}
	panic("lenTest: operator " + t.op)
}

func (t *strTest) test(v string) bool {
	switch t.op {
	case "==":
		return v == t.s
	case "!=":
		return v != t.s
	case "startsWith":
		return strings.HasPrefix(v, t.s)
	case "endsWith":
		return strings.HasSuffix(v, t.s)
	case "contains":
		return strings.Contains(v, t.s)
	case "matches":
		return t.re.MatchString(v)
	case "in":
		_, ok := t.set[v]
		return ok
	}
	panic("strTest: operator " + t.op)
}

// readsPartFields reports whether a checked tree has something the patcher
// rewrites (a part or entry field read, a rate() call), so expressions
// without any are compiled once.
func readsPartFields(prog *vm.Program) bool {
	node := prog.Node()
	d := &partFieldDetector{}
	ast.Walk(&node, d)
	return d.found
}

type partFieldDetector struct{ found bool }

func (d *partFieldDetector) Visit(node *ast.Node) {
	if c, ok := (*node).(*ast.CallNode); ok {
		if id, ok := c.Callee.(*ast.IdentifierNode); ok && (id.Value == "rate" || directFuncs[id.Value] != nil) {
			d.found = true
		}
	}
	if n, ok := (*node).(*ast.MemberNode); ok && !n.Optional && !n.Method && n.Node.Type() != nil {
		switch n.Node.Type() {
		case partPtrType, partType, entryType:
			d.found = true
		}
	}
}

// patchedProgram compiles src again with the part-field patcher. Any
// failure keeps the unpatched program: the patch is an optimisation only.
func patchedProgram(src string, opts []expr.Option, prog *vm.Program) *vm.Program {
	if !readsPartFields(prog) {
		return prog
	}
	pp := &partFieldPatcher{}
	opts = append(opts[:len(opts):len(opts)], expr.Patch(pp))
	p2, err := compileSafe(src, opts)
	if err != nil || pp.n == 0 {
		return prog
	}
	return p2
}

// partBoxes holds, for the message being evaluated, each part field value
// boxed once (slot i*nPartFields+field for Parts[i]).
type partBoxes struct {
	parts []*mimeparse.Part
	boxes []any
	last  int // index of the part found last: loops visit parts in order
	ready bool
}

func (pb *partBoxes) reset(parts []*mimeparse.Part) {
	clear(pb.boxes)
	pb.parts, pb.boxes, pb.last, pb.ready = parts, pb.boxes[:0], 0, false
}

// index returns p's position in parts, or -1.
func (pb *partBoxes) index(p *mimeparse.Part) int {
	if !pb.ready {
		n := len(pb.parts) * nPartFields
		if cap(pb.boxes) < n {
			pb.boxes = make([]any, n)
		}
		pb.boxes = pb.boxes[:n]
		pb.ready = true
	}
	for _, i := range [2]int{pb.last, pb.last + 1} {
		if i < len(pb.parts) && pb.parts[i] == p {
			pb.last = i
			return i
		}
	}
	for i, q := range pb.parts {
		if q == p {
			pb.last = i
			return i
		}
	}
	return -1
}

func (e *Evaluator) partAny(x, fi any) any {
	f := fi.(int)
	switch p := x.(type) {
	case *mimeparse.Part:
		if p == nil {
			panic(fmt.Sprintf("cannot get %s from a nil part", partFieldName(f)))
		}
		if f == archiveIdx {
			return p.Archive // kept as typed; the loops take archiveList
		}
		i := e.boxes.index(p)
		if i < 0 {
			return boxPartField(p, f)
		}
		k := f
		if f == archiveList {
			k = archiveIdx // the typed archive is never cached: the slot is free
		}
		slot := &e.boxes.boxes[i*nPartFields+k]
		if *slot == nil {
			*slot = boxPartField(p, f)
		}
		return *slot
	case mimeparse.ArchiveEntry:
		// x is boxed and not addressable: reflect reads the field in place.
		return reflect.ValueOf(x).Field(f).Interface()
	}
	panic(fmt.Sprintf("cannot get a part field from %T", x))
}

func boxPartField(p *mimeparse.Part, f int) any {
	if f == archiveList {
		if p.Archive == nil {
			return p.Archive
		}
		out := make([]any, len(p.Archive))
		for i, a := range p.Archive {
			out[i] = a
		}
		return out
	}
	// Through a pointer to the field: boxing an empty string, a nil slice
	// or a small integer does not allocate (reflect's Interface always does).
	switch x := reflect.ValueOf(p).Elem().Field(f).Addr().Interface().(type) {
	case *string:
		return *x
	case *[]string:
		return *x
	case *int64:
		return *x
	case *int:
		return *x
	case *bool:
		return *x
	}
	return reflect.ValueOf(p).Elem().Field(f).Interface()
}

func partBool(x, fi any) bool {
	switch t := fi.(type) {
	case *strTest:
		return t.test(partField(x, t.field).String())
	case *lenTest:
		return t.test(partField(x, t.field).Len())
	case int:
		return partField(x, t).Bool()
	}
	panic(fmt.Sprintf("cannot test %T", fi))
}

// partFieldName names field f of Part, for runtime errors.
func partFieldName(f int) string {
	if f == archiveList {
		f = archiveIdx
	}
	if f >= 0 && f < nPartFields {
		return partType.Field(f).Name
	}
	return fmt.Sprint("field ", f)
}

// partField returns field f of a part or entry, without copying it.
func partField(x any, f int) reflect.Value {
	switch p := x.(type) {
	case *mimeparse.Part:
		if p == nil {
			panic(fmt.Sprintf("cannot get %s from a nil part", partFieldName(f)))
		}
		return reflect.ValueOf(p).Elem().Field(f)
	case mimeparse.ArchiveEntry:
		return reflect.ValueOf(x).Field(f)
	}
	panic(fmt.Sprintf("cannot get a part field from %T", x))
}
