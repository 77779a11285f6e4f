package rules

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	exprcompiler "github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/vm"

	"mailgate/mimeparse"
)

// Reading a field of a part costs an allocation in expr: OpFetchField reads
// it through reflect, and a field behind a pointer (our []*mimeparse.Part)
// is addressable, so reflect copies it to the heap to box it, on every
// read; an archive entry is copied whole each time a loop visits it. With
// 50 rules that was 2/3 of the allocations of an Eval.
//
// So every expression is compiled with a rewrite between the checker and
// the optimizer (compilePatched) that turns every read of a part or
// archive-entry field, `p.Ext`, into a call typed as the field is:
//   - a bool field into partBool(p, field), a constant function (pushed,
//     not loaded from the Env) returning a bool, which boxes for free;
//   - a string field compared with a constant (`.Ext == "exe"`,
//     `.Ext in [...]`, startsWith, matches, ...) or the length of a field
//     compared with a constant into partBool(p, test);
//   - any other field into PartAny(p, field), an Evaluator closure in the
//     Env returning the value boxed once per message and part, and an
//     archive walked by a builtin as a []any of boxed entries, which expr
//     loops over without reflection and whose fields it reads in place.
// func(any, any) bool and func(any, any) any are signatures expr calls
// without reflection (OpCallTyped). The fields are read by the switches
// below, not by reflect.

// partFieldRewrite returns the rewriter compilePatched runs. Tests replace
// it: a nil visitor compiles the plain program (the differential test
// compares the two), a broken one checks that a failed rewrite fails the
// load.
var partFieldRewrite = func() ast.Visitor { return &partFieldPatcher{} }

// compilePatched does what expr.Compile does, with the part-field rewrite
// between the checker and the optimizer. The checker's errors are those of
// the expression as written, and only a tree that type-checks is
// rewritten. A rewritten tree that fails its second check fails the load:
// the rewrite has a bug then, and a plain program would hide it.
func compilePatched(src string, opts []expr.Option) (*vm.Program, error) {
	cfg := conf.CreateNew()
	for _, op := range opts {
		op(cfg)
	}
	for name := range cfg.Disabled {
		delete(cfg.Builtins, name)
	}
	cfg.Check()
	tree, err := checker.ParseCheck(src, cfg)
	if err != nil {
		return nil, err
	}
	if v := partFieldRewrite(); v != nil {
		ast.Walk(&tree.Node, v)
		if _, err := checker.Check(tree, cfg); err != nil {
			return nil, fmt.Errorf("internal error, please report: the part-field rewrite (rules/partfields.go) broke this expression: %v", err)
		}
	}
	if cfg.Optimize {
		if err := optimizer.Optimize(&tree.Node, cfg); err != nil {
			var fe *file.Error
			if errors.As(err, &fe) {
				return nil, fe.Bind(tree.Source)
			}
			return nil, err
		}
	}
	return exprcompiler.Compile(tree, cfg)
}

const (
	partAnyName = "mailgate part any" // not identifiers: no policy can name them
	rateAnyName = "mailgate rate"
)

// field is a field of mimeparse.Part or mimeparse.ArchiveEntry, as the
// rewritten programs name it; a name both types have has one field.
type field uint8

const (
	fPath field = iota
	fDepth
	fContentType
	fCharset
	fDisposition
	fFilename
	fNames
	fExt
	fTransferEncoding
	fIsMultipart
	fIsAttachment
	fSize
	fSHA256
	fDetectedType
	fExecutable
	fEncrypted
	fMacros
	fArchive
	fDefects
	fFields
	fHeaderOffset
	fBodyOffset
	fEndOffset
	fActive
	fReading
	fName // ArchiveEntry only
	nFields

	// archiveList is Part.Archive as a []any of boxed entries, what a
	// builtin that loops gets.
	archiveList = nFields

	nSlots = int(nFields) + 1 // boxes cached per part: every field and archiveList
)

var fieldName = [nFields]string{
	fPath: "Path", fDepth: "Depth", fContentType: "ContentType", fCharset: "Charset",
	fDisposition: "Disposition", fFilename: "Filename", fNames: "Names", fExt: "Ext",
	fTransferEncoding: "TransferEncoding", fIsMultipart: "IsMultipart", fIsAttachment: "IsAttachment",
	fSize: "Size", fSHA256: "SHA256", fDetectedType: "DetectedType", fExecutable: "Executable",
	fEncrypted: "Encrypted", fMacros: "Macros", fArchive: "Archive", fDefects: "Defects",
	fFields: "Fields", fHeaderOffset: "HeaderOffset", fBodyOffset: "BodyOffset", fEndOffset: "EndOffset",
	fActive: "Active", fReading: "Reading", fName: "Name",
}

func (f field) String() string {
	if f == archiveList {
		f = fArchive
	}
	if f < nFields {
		return fieldName[f]
	}
	return fmt.Sprint("field ", uint8(f))
}

// fieldTypes maps the name of each field the switches below read to its
// type, per struct. A field missing from the switches is not rewritten:
// expr reads it through reflect (TestPartFieldSwitch fails until it is
// added).
var (
	partPtrType = reflect.TypeOf(&mimeparse.Part{})
	entryType   = reflect.TypeOf(mimeparse.ArchiveEntry{})
	fieldTypes  = map[reflect.Type]map[string]fieldType{
		partPtrType: structFields(partPtrType.Elem()),
		entryType:   structFields(entryType),
	}
	boolType     = reflect.TypeOf(true)
	intType      = reflect.TypeOf(0)
	stringType   = reflect.TypeOf("")
	partAnyType  = reflect.TypeOf(func(part, field any) any { return nil })
	partBoolType = reflect.TypeOf(partBool)
	strFuncType  = reflect.TypeOf(strings.ToLower)
)

type fieldType struct {
	f field
	t reflect.Type
}

func structFields(t reflect.Type) map[string]fieldType {
	m := map[string]fieldType{}
	for f := range nFields {
		if sf, ok := t.FieldByName(fieldName[f]); ok && len(sf.Index) == 1 {
			m[sf.Name] = fieldType{f, sf.Type}
		}
	}
	return m
}

// directFuncs are the helpers of exprFuncs with a func(string) string twin.
var directFuncs = map[string]func(string) string{"lower": strings.ToLower, "domain": addrDomain}

// typedCall is a call the checker takes as typed out without looking
// further (expr's Checker.callNode), with its callee typed too so that the
// compiler calls it with OpCallTyped.
func typedCall(callee ast.Node, calleeType, out reflect.Type, args ...ast.Node) *ast.CallNode {
	callee.SetType(calleeType)
	c := &ast.CallNode{Callee: callee, Arguments: args}
	c.SetType(out)
	return c
}

// fieldConst is the field argument of a rewritten read.
func fieldConst(f field) *ast.ConstantNode { return &ast.ConstantNode{Value: f} }

// partFieldPatcher rewrites reads of part and archive-entry fields (see
// above), rate(), lower() and domain(). It runs on a tree the checker typed
// without error, and ast.Walk visits children first.
type partFieldPatcher struct{}

func (p *partFieldPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		switch {
		case !ok:
		case id.Value == "rate" && len(n.Arguments) == 2:
			// rate(key, window): see Evaluator.rateAny.
			ast.Patch(node, typedCall(&ast.IdentifierNode{Value: rateAnyName}, partAnyType, intType, n.Arguments...))
		case len(n.Arguments) == 1 && directFuncs[id.Value] != nil:
			// lower(s), domain(s): expr.Function calls go through a []any
			// of arguments; a func(string) string constant is called directly.
			ast.Patch(node, typedCall(&ast.ConstantNode{Value: directFuncs[id.Value]}, strFuncType, stringType, n.Arguments...))
		}
	case *ast.BuiltinNode:
		// any(.Archive, ...) and the other builtins that loop (with
		// vm.OpBegin) walk a []any of boxed entries. The call keeps the type
		// []ArchiveEntry: the checker then types what the builtin returns
		// as before, and the elements are the same boxed entries.
		if c, f, ok := fieldRead(firstArg(n)); ok && f == fArchive && loopBuiltins[n.Name] {
			c.Arguments[1] = fieldConst(archiveList)
		}
	case *ast.BinaryNode:
		var part ast.Node
		var test any
		if t := strTestOf(n); t != nil {
			part, test = n.Left.(*ast.CallNode).Arguments[0], t
		} else if t, p := lenTestOf(n); t != nil {
			part, test = p, t
		}
		if test != nil {
			ast.Patch(node, typedCall(&ast.ConstantNode{Value: partBool}, partBoolType, boolType, part, &ast.ConstantNode{Value: test}))
		}
	case *ast.MemberNode:
		prop, ok := n.Property.(*ast.StringNode)
		if !ok || n.Optional || n.Method {
			return
		}
		ft, ok := fieldTypes[n.Node.Type()][prop.Value]
		if !ok {
			return // a method (.Header), or another type
		}
		if ft.t == boolType {
			// needs no Evaluator: no Env field to load
			ast.Patch(node, typedCall(&ast.ConstantNode{Value: partBool}, partBoolType, boolType, n.Node, fieldConst(ft.f)))
		} else {
			ast.Patch(node, typedCall(&ast.IdentifierNode{Value: partAnyName}, partAnyType, ft.t, n.Node, fieldConst(ft.f)))
		}
	}
}

// loopBuiltins are the builtins whose first argument expr walks with
// vm.OpBegin.
var loopBuiltins = map[string]bool{
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true, "count": true, "sum": true,
	"find": true, "findIndex": true, "findLast": true, "findLastIndex": true, "groupBy": true, "sortBy": true, "reduce": true,
}

func firstArg(b *ast.BuiltinNode) ast.Node {
	if len(b.Arguments) == 0 {
		return nil
	}
	return b.Arguments[0]
}

// fieldRead returns a rewritten read of a non-bool field, and its field.
func fieldRead(n ast.Node) (*ast.CallNode, field, bool) {
	c, ok := n.(*ast.CallNode)
	if !ok || len(c.Arguments) != 2 {
		return nil, 0, false
	}
	id, ok1 := c.Callee.(*ast.IdentifierNode)
	fc, ok2 := c.Arguments[1].(*ast.ConstantNode)
	if !ok1 || !ok2 || id.Value != partAnyName {
		return nil, 0, false
	}
	f, ok := fc.Value.(field)
	return c, f, ok
}

// strTest is a string field of a part or entry compared with a constant:
// `.Ext == "exe"`, `.Ext in ["js", "vbs"]`, `.Filename matches "..."`
// become one partBool call (children are patched first: b.Left is already
// a partAny call).
type strTest struct {
	field field
	op    string
	s     string
	set   map[string]struct{}
	re    *regexp.Regexp
}

func strTestOf(b *ast.BinaryNode) *strTest {
	c, f, ok := fieldRead(b.Left)
	if !ok || c.Type().Kind() != reflect.String {
		return nil
	}
	t := &strTest{field: f, op: b.Operator}
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
	field field
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
	c, f, ok := fieldRead(l.Arguments[0])
	if !ok {
		return nil, nil
	}
	if k := c.Type().Kind(); k != reflect.Slice && k != reflect.String {
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

// partBoxes holds, for the message being evaluated, each part field value
// boxed once (slot i*nSlots+field for Parts[i]).
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
		n := len(pb.parts) * nSlots
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
	f := fi.(field)
	p, ok := x.(*mimeparse.Part)
	if !ok || p == nil {
		return fieldValue(x, f) // entries, and errors
	}
	i := e.boxes.index(p)
	if i < 0 {
		return partValue(p, f)
	}
	slot := &e.boxes.boxes[i*nSlots+int(f)]
	if *slot == nil {
		*slot = partValue(p, f)
	}
	return *slot
}

func partBool(x, fi any) bool {
	switch t := fi.(type) {
	case *strTest:
		return t.test(fieldString(x, t.field))
	case *lenTest:
		return t.test(fieldLen(x, t.field))
	case field:
		return fieldValue(x, t).(bool)
	}
	panic(fmt.Sprintf("cannot test %T", fi))
}

// fieldValue returns field f of a part or entry, boxed.
func fieldValue(x any, f field) any {
	switch p := x.(type) {
	case *mimeparse.Part:
		return partValue(nonNil(p, f), f)
	case mimeparse.ArchiveEntry:
		return entryValue(&p, f)
	}
	panic(fmt.Sprintf("cannot get a part field from %T", x))
}

func nonNil(p *mimeparse.Part, f field) *mimeparse.Part {
	if p == nil {
		panic(fmt.Sprintf("cannot get %s from a nil part", f))
	}
	return p
}

// partValue returns field f of p boxed: an empty string, a nil slice, a
// bool or a small integer box without allocating.
func partValue(p *mimeparse.Part, f field) any {
	switch f {
	case fDepth:
		return p.Depth
	case fNames:
		return p.Names
	case fIsMultipart:
		return p.IsMultipart
	case fIsAttachment:
		return p.IsAttachment
	case fSize:
		return p.Size
	case fExecutable:
		return p.Executable
	case fEncrypted:
		return p.Encrypted
	case fMacros:
		return p.Macros
	case fArchive:
		return p.Archive
	case archiveList:
		if p.Archive == nil {
			return []any(nil)
		}
		out := make([]any, len(p.Archive))
		for i, a := range p.Archive {
			out[i] = a
		}
		return out
	case fDefects:
		return p.Defects
	case fFields:
		return p.Fields
	case fHeaderOffset:
		return p.HeaderOffset
	case fBodyOffset:
		return p.BodyOffset
	case fEndOffset:
		return p.EndOffset
	case fActive:
		return p.Active
	}
	return partString(p, f)
}

// partString returns string field f of p.
func partString(p *mimeparse.Part, f field) string {
	switch f {
	case fPath:
		return p.Path
	case fContentType:
		return p.ContentType
	case fCharset:
		return p.Charset
	case fDisposition:
		return p.Disposition
	case fFilename:
		return p.Filename
	case fExt:
		return p.Ext
	case fTransferEncoding:
		return p.TransferEncoding
	case fSHA256:
		return p.SHA256
	case fDetectedType:
		return p.DetectedType
	case fReading:
		return p.Reading
	}
	panic(fmt.Sprintf("cannot get %s from a part", f))
}

func entryValue(e *mimeparse.ArchiveEntry, f field) any {
	switch f {
	case fSize:
		return e.Size
	case fExecutable:
		return e.Executable
	case fEncrypted:
		return e.Encrypted
	case fMacros:
		return e.Macros
	case fDepth:
		return e.Depth
	case fActive:
		return e.Active
	}
	return entryString(e, f)
}

func entryString(e *mimeparse.ArchiveEntry, f field) string {
	switch f {
	case fName:
		return e.Name
	case fExt:
		return e.Ext
	case fDetectedType:
		return e.DetectedType
	}
	panic(fmt.Sprintf("cannot get %s from an archive entry", f))
}

// fieldString returns string field f of a part or entry, without boxing.
func fieldString(x any, f field) string {
	switch p := x.(type) {
	case *mimeparse.Part:
		return partString(nonNil(p, f), f)
	case mimeparse.ArchiveEntry:
		return entryString(&p, f)
	}
	panic(fmt.Sprintf("cannot get a part field from %T", x))
}

// fieldLen returns the length of string or slice field f of a part or
// entry, without boxing.
func fieldLen(x any, f field) int {
	if p, ok := x.(*mimeparse.Part); ok {
		switch f {
		case fNames:
			return len(nonNil(p, f).Names)
		case fArchive, archiveList:
			return len(nonNil(p, f).Archive)
		case fDefects:
			return len(nonNil(p, f).Defects)
		case fFields:
			return len(nonNil(p, f).Fields)
		case fActive:
			return len(nonNil(p, f).Active)
		}
	}
	if e, ok := x.(mimeparse.ArchiveEntry); ok && f == fActive {
		return len(e.Active)
	}
	return len(fieldString(x, f))
}
