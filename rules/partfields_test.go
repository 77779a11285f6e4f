package rules

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"mailgate/mimeparse"
)

// partFieldPolicy reads part and archive fields every way an expression
// can: in predicates, by index, in templates, through builtins, in strip.
const partFieldPolicy = `rules:
  - name: ext
    when: 'any(Attachments, .Ext == "exe" || .Ext in ["js", "lnk"])'
    score: 1
  - name: archive
    when: 'any(Attachments, any(.Archive, .Executable || .Encrypted || .Ext in ["js", "exe"]))'
    score: 1
  - name: archive-count
    when: 'sum(Attachments, len(.Archive)) > 1 && count(Parts, .IsMultipart) >= 1'
    score: 1
  - name: names
    when: 'any(Attachments, len(.Names) > 1 || .Size > 100000 || .Depth > 3)'
    score: 1
  - name: first-entry
    when: 'len(Attachments) > 0 && len(Attachments[0].Archive) > 0 && Attachments[0].Archive[0].Name != ""'
    score: 1
  - name: optional
    when: 'Parts[0]?.ContentType startsWith "multipart/"'
    score: 1
  - name: part-header
    when: 'any(Parts, .Header("X-Part-Note") == "exe" || len(.Defects) > 0)'
    score: 1
  - name: archived-names
    when: 'any(Attachments, any(map(.Archive, .Name), # endsWith ".js"))'
    score: 1
  - name: string-ops
    when: 'any(Attachments, .Filename startsWith "inv" && .Filename endsWith ".exe" && .ContentType contains "octet" && .Filename matches "(?i)\\.pdf\\.exe$" && .Ext != "pdf")'
    score: 1
  - name: entry-string-ops
    when: 'any(Attachments, any(.Archive, .Name endsWith ".js" && .DetectedType != "" && .Ext in ["js"] && .Name matches "^run"))'
    score: 1
  - name: string-ops-miss
    when: 'any(Parts, .Path == "9" || .Charset startsWith "iso-" || .SHA256 contains "zz" || .Ext in ["none"] || .Filename matches "^x")'
    score: 1
  - name: len-ops
    when: 'any(Attachments, len(.Names) >= 2 && len(.Archive) == 2 && len(.Defects) != 0 && len(.Filename) < 11 && len(.Ext) <= 3 && len(.Archive) > 1)'
    score: 1
  - name: len-ops-miss
    when: 'any(Parts, len(.Names) > 2 || len(.Archive) < 0 || any(.Archive, len(.Name) > 30))'
    score: 1
  - name: tmpl
    headers: {add: {X-Parts: '{{ join(map(Attachments, .Filename + ":" + .Ext + ":" + string(.Size) + ":" + string(.Macros)), ",") }} {{ len(Attachments) > 0 ? map(Attachments[0].Archive, .Name) : nil }} {{ map(Parts, .Path) }}'}}
  - name: strip-macros
    strip: 'filter(Attachments, .Macros || any(.Archive, .Executable))'
  - name: archive-builtins
    when: 'any(Attachments, len(.Archive) > 1 && first(.Archive)?.Name == "a.jpg" && last(.Archive).Size == 50 && count(.Archive, .Depth == 1) == 2 && string(.Archive) contains "run.js" && len(filter(.Archive, .Size > 60)) == 1 && find(.Archive, .Ext == "js").Name == "run.js")'
    score: 1
  - name: typed-reads
    when: 'len(Attachments) > 2 && Attachments[0].Filename + "/" + Attachments[0].Ext == "invoice.pdf.exe/exe" && Parts[4].Fields[1].Value == "exe" && Attachments[2].Archive[1].Size * 2 == 100 && Parts[2].HeaderOffset == 0'
    score: 1
  - name: tmpl-json
    headers: {add: {X-Json: '{{ toJSON(map(Attachments, .Archive)) }} {{ map(Attachments, len(.Archive) + len(.Fields)) }} {{ sum(Attachments, .Size) }} {{ lower(Attachments[0].Filename) }}'}}
`

// TestPartFieldPatch: a patched program decides exactly as the unpatched
// one, on the test message and on every parsed fixture, for the policy
// above and every shipped pack.
func TestPartFieldPatch(t *testing.T) {
	msgs := map[string]*mimeparse.Message{"testMessage": testMessage(), "benign": benignMessage()}
	files, _ := filepath.Glob("../testdata/*/*.eml")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		tcheck(t, err, "reading fixture")
		m, err := mimeparse.Parse(bytes.NewReader(raw), mimeparse.DefaultLimits())
		if err == nil && m != nil {
			msgs[f] = m
		}
	}
	load := func(patch bool) []*Set {
		t.Helper()
		if !patch {
			defer plainCompile()()
		}
		sets := []*Set{mustLoad(t, partFieldPolicy, nil, nil), mustLoad(t, benchPolicy(), map[string]string{
			"internal_domains": "example.org\n", "internal_nets": "10.0.0.0/8\n",
			"bad_hashes": strings.Repeat("a", 64) + "\n", "bad_senders": "a@b.example\n",
		}, nil)}
		packs, _ := filepath.Glob("../policies/*.yaml")
		for _, p := range packs {
			s, err := Load(Config{Policies: []string{p}, Lists: map[string]string{"internal_domains": "../policies/lists/internal_domains.txt"}}, NewState(0, nil))
			tcheck(t, err, "loading "+p)
			sets = append(sets, s)
		}
		return sets
	}
	plain, patched := load(false), load(true)
	if n := countPatched(patched[0]); n < 8 {
		t.Fatalf("%d programs patched in the test policy, want at least 8", n)
	}
	if n := countPatched(plain[0]); n != 0 {
		t.Fatalf("%d programs patched with the patch off", n)
	}
	for i := range plain {
		for name, m := range msgs {
			f := testFacts()
			f.Msg = m
			want := plain[i].newEvaluator(NewState(0, nil)).Eval(StageData, f)
			got := patched[i].newEvaluator(NewState(0, nil)).Eval(StageData, f)
			if !reflect.DeepEqual(fmt.Sprint(got), fmt.Sprint(want)) {
				t.Errorf("set %d, %s:\npatched   %+v\nunpatched %+v", i, name, got, want)
			}
		}
	}
	// The test policy fires on the test message, so the comparison above
	// compared something.
	v := patched[0].NewEvaluator().Eval(StageData, testFacts())
	if len(v.Errors) > 0 || len(v.Rules) < 10 || len(v.Edits.Strip) != 1 {
		t.Fatalf("test policy on testMessage: %+v", v)
	}
	if !contains(v.Rules, "string-ops") || !contains(v.Rules, "entry-string-ops") || contains(v.Rules, "string-ops-miss") ||
		!contains(v.Rules, "len-ops") || contains(v.Rules, "len-ops-miss") ||
		!contains(v.Rules, "archive-builtins") || !contains(v.Rules, "typed-reads") {
		t.Fatalf("string tests on testMessage: rules %v", v.Rules)
	}
}

// plainCompile turns the part-field rewrite off until the returned
// function is called.
func plainCompile() func() {
	saved := partFieldRewrite
	partFieldRewrite = func() ast.Visitor { return nil }
	return func() { partFieldRewrite = saved }
}

func countPatched(s *Set) int {
	n := 0
	for _, r := range s.byStage[StageData] {
		for _, p := range []*vm.Program{r.when, r.strip} {
			if p != nil && strings.Contains(p.Disassemble(), "func(interface {}, interface {})") {
				n++
			}
		}
	}
	return n
}

// TestPartFieldNil: a field read from no part is a rule error, patched or
// not, never a crash or a silent false.
func TestPartFieldNil(t *testing.T) {
	for _, when := range []string{
		`first(filter(Attachments, .Size < 0)).Ext == "exe"`,
		`first(filter(Attachments, .Size < 0)).Executable`,
		`first(filter(Attachments, .Size < 0)).SHA256 in ["x"]`,
	} {
		for _, patch := range []bool{false, true} {
			restore := func() {}
			if !patch {
				restore = plainCompile()
			}
			s := mustLoad(t, "rules:\n  - name: nil-part\n    when: '"+when+"'\n", nil, nil)
			restore()
			v := s.NewEvaluator().Eval(StageData, testFacts())
			if len(v.Errors) != 1 || v.Action != ActionTempfail {
				t.Errorf("%s (patch %v): action %s, errors %v; want a rule error", when, patch, v.Action, v.Errors)
			}
		}
	}
}

// TestPartFieldNilPanics: the closures panic (expr turns that into a rule
// error) on a nil part, naming the field.
func TestPartFieldNilPanics(t *testing.T) {
	e := mustLoad(t, "rules:\n  - name: x\n    when: 'true'\n", nil, nil).NewEvaluator()
	for name, f := range map[string]func(){
		"partAny nil part":  func() { e.partAny((*mimeparse.Part)(nil), fExt) },
		"partAny nil":       func() { e.partAny(nil, fExt) },
		"partBool nil part": func() { partBool((*mimeparse.Part)(nil), fMacros) },
		"strTest nil part":  func() { partBool((*mimeparse.Part)(nil), &strTest{field: fExt, op: "==", s: "exe"}) },
		"lenTest nil part":  func() { partBool((*mimeparse.Part)(nil), &lenTest{field: fNames, op: ">", n: 0}) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "cannot get") {
					t.Errorf("%s: recovered %v, want a \"cannot get\" panic", name, r)
				}
			}()
			f()
		}()
	}
}

// TestRateTyped: rate(), lower() and domain() are called without
// reflection or an argument slice (OpCallTyped), and still work.
func TestRateTyped(t *testing.T) {
	s := mustLoad(t, "rules:\n  - name: r\n    stage: connect\n    when: 'rate(\"conn:\" + Client.IP, \"1m\") > 1'\n", nil, NewState(0, nil))
	d := s.byStage[StageConnect][0].when.Disassemble()
	if !strings.Contains(d, "OpCallTyped") || strings.Contains(d, "OpCall ") {
		t.Fatalf("rate program:\n%s", d)
	}
	e := s.NewEvaluator()
	var got []string
	for i := 0; i < 3; i++ {
		got = append(got, strings.Join(e.Eval(StageConnect, testFacts()).Rules, ","))
	}
	tcompare(t, "rules matched per connection", got, []string{"", "r", "r"})

	s = mustLoad(t, "rules:\n  - name: l\n    stage: mail\n    when: 'lower(Envelope.From) == \"alice@example.com\" && domain(Envelope.From) == \"example.com\"'\n", nil, nil)
	d = s.byStage[StageMail][0].when.Disassemble()
	if strings.Contains(d, "OpCall1") || strings.Count(d, "OpCallTyped") != 2 {
		t.Fatalf("lower/domain program:\n%s", d)
	}
	tcompare(t, "lower/domain rule", s.NewEvaluator().Eval(StageMail, testFacts()).Rules, []string{"l"})
}

// TestPartFieldTyped: every rewritten read keeps its field's type, not only
// `#.Field`: the compiled code compares strings as strings and needs no
// OpDeref (through reflect) on what partAny returns.
func TestPartFieldTyped(t *testing.T) {
	s := mustLoad(t, "rules:\n  - name: x\n    when: 'len(Attachments) > 0 && Attachments[0].Filename == Attachments[0].Ext + \".pdf.exe\" && Attachments[0].Size > 3'\n", nil, nil)
	d := s.byStage[StageData][0].when.Disassemble()
	if strings.Count(d, "OpCallTyped") != 3 || !strings.Contains(d, "OpEqualString") || strings.Contains(d, "OpDeref") {
		t.Fatalf("program:\n%s", d)
	}
	f := testFacts()
	f.Msg.Parts[4].Filename = "exe.pdf.exe"
	tcompare(t, "rules", s.NewEvaluator().Eval(StageData, f).Rules, []string{"x"})
}

// TestPartFieldRewriteFails: a rewrite that breaks an expression fails the
// load, naming the rule; it never falls back to the plain program.
func TestPartFieldRewriteFails(t *testing.T) {
	saved := partFieldRewrite
	partFieldRewrite = func() ast.Visitor { return breakInts{} }
	defer func() { partFieldRewrite = saved }()
	_, err := loadSrc(t, "rules:\n  - name: big\n    when: 'any(Attachments, .Size > 100)'\n", nil, nil)
	p := problems(err)
	if len(p) != 1 || !strings.Contains(p[0], "rule big: when:") || !strings.Contains(p[0], "part-field rewrite") {
		t.Fatalf("load error: %v", err)
	}
}

// breakInts turns integer constants into strings: `Size > "100"` does not
// type-check.
type breakInts struct{}

func (breakInts) Visit(n *ast.Node) {
	if i, ok := (*n).(*ast.IntegerNode); ok {
		ast.Patch(n, &ast.StringNode{Value: fmt.Sprint(i.Value)})
	}
}

// TestPartFieldSwitch: the switches read every field of Part and
// ArchiveEntry (a field added to mimeparse needs its case), each with the
// value and type reflect sees.
func TestPartFieldSwitch(t *testing.T) {
	p := *testMessage().Parts[6]
	p.Fields = []mimeparse.Field{{Name: "A", Value: "b"}}
	p.Path, p.Charset, p.TransferEncoding, p.Executable, p.Encrypted, p.Macros, p.IsMultipart = "2.1", "utf-8", "base64", true, true, true, true
	p.HeaderOffset, p.BodyOffset, p.EndOffset = 10, 200, 3000
	p.Active = []string{"script"}
	p.Reading = "last-content-type"
	a := p.Archive[1]
	a.Executable, a.Encrypted, a.Macros, a.Depth, a.Active = true, true, true, 2, []string{"pdf-launch"}
	for _, xv := range []struct {
		x any
		v reflect.Value
	}{{&p, reflect.ValueOf(p)}, {a, reflect.ValueOf(a)}} {
		x, v := xv.x, xv.v
		for i := 0; i < v.NumField(); i++ {
			sf := v.Type().Field(i)
			if !sf.IsExported() || sf.Tag.Get("expr") == "-" {
				continue // no policy can read it (Part.Parent)
			}
			ft, ok := fieldTypes[reflect.TypeOf(x)][sf.Name]
			if !ok {
				t.Errorf("%T.%s: no case in partfields.go", x, sf.Name)
				continue
			}
			want := v.Field(i).Interface()
			if v.Field(i).IsZero() {
				t.Errorf("%T.%s: zero in the test value", x, sf.Name)
			}
			if got := fieldValue(x, ft.f); ft.t != sf.Type || reflect.TypeOf(got) != sf.Type || !reflect.DeepEqual(got, want) {
				t.Errorf("%T.%s: %T %v (type %v), want %T %v", x, sf.Name, got, got, ft.t, want, want)
			}
			switch k := sf.Type.Kind(); k {
			case reflect.String:
				tcompare(t, sf.Name, fieldString(x, ft.f), want)
				fallthrough
			case reflect.Slice:
				tcompare(t, "len "+sf.Name, fieldLen(x, ft.f), v.Field(i).Len())
			}
		}
	}
	e := (&Set{}).newEvaluator(nil)
	e.boxes.reset([]*mimeparse.Part{&p})
	for range 2 { // the second time from the cache
		tcompare(t, "archiveList", e.partAny(&p, archiveList), []any{p.Archive[0], p.Archive[1]})
		tcompare(t, "Archive", e.partAny(&p, fArchive), p.Archive)
		tcompare(t, "len archiveList", fieldLen(&p, archiveList), 2)
	}
}
