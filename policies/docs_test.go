package policies_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"mailgate/mimeparse"
	"mailgate/rules"
)

const policyDoc = "../docs/policy.md"

// yamlExamples returns every ```yaml block of the reference with the line
// it starts on.
func yamlExamples(t *testing.T, doc string) (blocks []string, lines []int) {
	t.Helper()
	var cur []string
	in, start := false, 0
	for i, l := range strings.Split(doc, "\n") {
		switch {
		case !in && strings.TrimSpace(l) == "```yaml":
			in, cur, start = true, nil, i+2
		case in && strings.TrimSpace(l) == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n")+"\n")
			lines = append(lines, start)
		case in:
			cur = append(cur, l)
		}
	}
	if in {
		t.Fatalf("%s: unterminated ```yaml block from line %d", policyDoc, start)
	}
	return blocks, lines
}

var listRef = regexp.MustCompile(`Lists\.([A-Za-z_][A-Za-z0-9_]*)`)

// TestPolicyDocExamples loads every example of docs/policy.md as a policy
// file, with every list it names configured, so the reference cannot rot.
func TestPolicyDocExamples(t *testing.T) {
	data, err := os.ReadFile(policyDoc)
	if err != nil {
		t.Fatal(err)
	}
	blocks, lines := yamlExamples(t, string(data))
	if len(blocks) < 25 {
		t.Fatalf("only %d yaml examples in %s", len(blocks), policyDoc)
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "list.txt")
	os.WriteFile(list, []byte("# sample list\nexample.org\nboss@example.org\n10.0.0.0/8\n2001:db8::/32\n"+
		strings.Repeat("ab", 32)+"\n"), 0o644)
	for i, b := range blocks {
		name := filepath.Join(dir, "example-"+strconv.Itoa(lines[i])+".yaml")
		if err := os.WriteFile(name, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		lists := map[string]string{}
		for _, m := range listRef.FindAllStringSubmatch(b, -1) {
			lists[m[1]] = list
		}
		// Examples may read lookup facts, as lint -p accepts them.
		_, err := rules.Load(rules.Config{Policies: []string{name}, Lists: lists, Facts: rules.FactSources{All: true}}, rules.NewState(16, nil))
		if err != nil {
			t.Errorf("%s:%d: example does not load:\n%s\n%v", policyDoc, lines[i], b, err)
		}
	}
}

// TestPolicyDocCoverage fails when a fact, function, action, stage or
// defect exists in the code but not in the reference.
func TestPolicyDocCoverage(t *testing.T) {
	data, err := os.ReadFile(policyDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	need := func(what, s string) {
		if !strings.Contains(doc, s) {
			t.Errorf("%s: %s is not documented (looked for %q)", policyDoc, what, s)
		}
	}
	env := reflect.TypeOf(rules.Env{})
	for i := 0; i < env.NumField(); i++ {
		f := env.Field(i)
		name := f.Name
		if tag := f.Tag.Get("expr"); tag != "" {
			name = tag
		}
		if strings.Contains(name, " ") {
			continue // internal (rules/partfields.go): not an identifier, no policy can use it
		}
		need("environment field "+name, "`"+name)
	}
	for _, typ := range []reflect.Type{reflect.TypeOf(rules.Client{}), reflect.TypeOf(rules.Envelope{})} {
		for i := 0; i < typ.NumField(); i++ {
			need(typ.Name()+"."+typ.Field(i).Name, "`"+typ.Name()+"."+typ.Field(i).Name+"`")
		}
	}
	skip := map[string]bool{"Fields": true, "HeaderOffset": true, "BodyOffset": true, "EndOffset": true}
	for _, typ := range []reflect.Type{reflect.TypeOf(mimeparse.Part{}), reflect.TypeOf(mimeparse.ArchiveEntry{})} {
		for i := 0; i < typ.NumField(); i++ {
			if typ.Field(i).Tag.Get("expr") == "-" || !typ.Field(i).IsExported() {
				continue // hidden from policies (Part.Parent)
			}
			if n := typ.Field(i).Name; !skip[n] {
				need(typ.Name()+"."+n, "`."+n+"`")
			}
		}
	}
	need("Part.Header", "`.Header(name)`")
	for _, fn := range []string{"cidr(", "domain(", "lower(", "rate("} {
		need("function "+fn, "`"+fn)
	}
	for _, a := range []string{"continue", "accept", "reject", "tempfail", "discard", "quarantine", "greylist"} {
		need("action "+a, "### "+a+"\n")
	}
	for _, s := range []string{"connect", "helo", "mail", "rcpt", "data"} {
		need("stage "+s, "| `"+s+"` |")
	}
	for _, k := range []string{"name", "description", "stage", "when", "action", "reply", "strip", "headers",
		"subject_prefix", "recipients", "score", "tags", "mode", "greylist"} {
		need("rule key "+k, "| `"+k+"` |")
	}
	defects := defectNames(t, "../mimeparse/defects.go")
	defects = append(defects, defectNames(t, "../mimeparse/inspect/defects.go")...)
	if len(defects) < 20 {
		t.Fatalf("found only %d defect names in the parser's sources", len(defects))
	}
	for _, d := range defects {
		need("defect "+d, "`"+d+"`")
	}
}

// defectNames reads the string constants named Defect* from a Go file.
func defectNames(t *testing.T, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, id := range vs.Names {
			if !strings.HasPrefix(id.Name, "Defect") || i >= len(vs.Values) {
				continue
			}
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, _ := strconv.Unquote(lit.Value)
				out = append(out, s)
			}
		}
		return true
	})
	return out
}
