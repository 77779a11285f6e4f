package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzLoad: any policy bytes → Load never panics; an error is always a
// *LoadError whose every problem has a file and a position, and a policy
// that loads evaluates at every stage without panicking.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("rules:\n  - name: a\n    headers: {add: {X-A: '{{ Subject }} {{'}}\n"))
	f.Add([]byte("rules:\n  - {name: a, when: |\n      x\n  }\n"))
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "internal_domains.txt"), []byte("example.org\n10.0.0.0/8\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	cfg := Config{Policies: []string{"p.yaml"}, Lists: map[string]string{"internal_domains": "internal_domains.txt"}, BaseDir: dir}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := LoadFS(fstest.MapFS{"p.yaml": {Data: data}}, cfg, nil)
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("error without problems: %T %v", err, err)
			}
			for _, p := range le.Problems {
				if p.File != "p.yaml" || p.Line < 1 || p.Col < 1 {
					t.Fatalf("problem without a position: %+v", p)
				}
			}
			if !strings.HasPrefix(err.Error(), "p.yaml:") {
				t.Fatalf("Error() does not start with the position: %q", err.Error())
			}
			return
		}
		e := s.NewEvaluator()
		f := testFacts()
		f.Rcpt = "bob@example.org"
		for st := StageConnect; st <= StageData; st++ {
			e.Eval(st, f)
		}
		s.RunTests()
	})
}

// FuzzExpr compiles any expression as a rule's when:, strip: and header
// template against the real environment and, when it compiles, evaluates it
// on a typical message: no panic escapes, a failing rule is always reported
// in Verdict.Errors with its name and changes nothing, and a load error is
// always positioned (docs/DEVELOPING.md §3.9). The part-field rewrite never fails a
// load, and the rewritten program decides as the plain one does.
func FuzzExpr(f *testing.F) {
	for _, line := range strings.Split(benchPolicy()+partFieldPolicy, "\n") {
		if i := strings.Index(line, "when: '"); i >= 0 {
			f.Add(strings.TrimSuffix(line[i+7:], "'"))
		}
	}
	f.Add(`Parts[99].Path == ""`)
	f.Add(`rate(Subject, "1s") > 0`)
	f.Add(`filter(Attachments, .Size > 0)`)
	f.Add(`cidr(Client.IP, Header("X-Net"))`)
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "l.txt"), []byte("example.org\n10.0.0.0/8\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	cfg := Config{Policies: []string{"p.yaml"}, Lists: map[string]string{"internal_domains": "l.txt"}, BaseDir: dir, RuleError: RuleErrorContinue}
	f.Fuzz(func(t *testing.T, src string) {
		if strings.ContainsAny(src, "'\r\n") || len(src) > 500 {
			return // keep the YAML single-quoted scalar intact
		}
		for _, field := range []string{"when", "strip", "headers: {add: {X-F: '{{ %s }}'}} #"} {
			var y string
			if strings.Contains(field, "%s") {
				y = fmt.Sprintf("rules:\n  - name: fz\n    "+field+"\n  - name: after\n    score: 1\n", src)
			} else {
				y = fmt.Sprintf("rules:\n  - name: fz\n    %s: '%s'\n  - name: after\n    score: 1\n", field, src)
			}
			s, err := LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(y)}}, cfg, nil)
			if err != nil {
				var le *LoadError
				if !errors.As(err, &le) || len(le.Problems) == 0 || le.Problems[0].Line < 1 || le.Problems[0].Col < 1 {
					t.Fatalf("%s: unpositioned error %v", field, err)
				}
				if strings.Contains(err.Error(), "part-field rewrite") {
					t.Fatalf("%s: %v", field, err)
				}
				continue
			}
			v := s.NewEvaluator().Eval(StageData, testFacts())
			restore := plainCompile()
			plain, err := LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(y)}}, cfg, nil)
			restore()
			if err != nil {
				t.Fatalf("%s: loads patched, not plain: %v", field, err)
			}
			if pv := plain.NewEvaluator().Eval(StageData, testFacts()); decision(pv) != decision(v) {
				t.Fatalf("%s:\npatched %s\nplain   %s", field, decision(v), decision(pv))
			}
			if !contains(v.Rules, "after") {
				t.Fatalf("%s: rule after did not run: %+v", field, v)
			}
			for _, e := range v.Errors {
				if !strings.Contains(e.Error(), "rule fz") {
					t.Fatalf("%s: error without the rule's name: %v", field, e)
				}
			}
			if len(v.Errors) > 0 && (contains(v.Rules, "fz") || len(v.Edits.Headers) > 0 || len(v.Edits.Strip) > 0) {
				t.Fatalf("%s: a failing rule changed the verdict: %+v", field, v)
			}
		}
	})
}

// decision is what a verdict decides, its errors counted (their messages
// may differ between a rewritten program and the plain one).
func decision(v Verdict) string {
	errs := len(v.Errors)
	v.Errors = nil
	return fmt.Sprintf("%+v, %d errors", v, errs)
}
