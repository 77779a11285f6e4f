package rules

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"mailgate/mimeparse"
)

// TestVirusStage: Virus is clamd's verdict on the message, known at stage
// data only; reading it earlier is a load error, and lint knows which sets
// read it (Set.Uses), so the front-end scans only for those.
func TestVirusStage(t *testing.T) {
	for _, stage := range []string{"connect", "helo", "mail", "rcpt"} {
		_, err := loadSrc(t, "rules:\n  - name: a\n    stage: "+stage+"\n    when: 'Virus.Found'\n    action: reject\n", nil, nil)
		want := "rule a: when: Virus is only known from stage data on (this rule runs at stage " + stage + ")"
		if err == nil || !strings.HasSuffix(problems(err)[0], want) {
			t.Errorf("stage %s: err = %v, want a problem ending %q", stage, err, want)
		}
	}
	s := mustLoad(t, "rules:\n  - name: a\n    when: 'Virus.Found'\n    action: reject\n", nil, nil)
	if !s.Uses("Virus") {
		t.Error("a set reading Virus.Found: Uses(\"Virus\") is false")
	}
	s = mustLoad(t, "rules:\n  - name: a\n    when: 'Size > 10'\n    action: reject\n", nil, nil)
	if s.Uses("Virus") {
		t.Error("a set not reading Virus: Uses(\"Virus\") is true")
	}
	_, err := loadSrc(t, "rules:\n  - name: a\n    when: 'Virus.Fonud'\n", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "Found") {
		t.Errorf("misspelt Virus field: err = %v, want a suggestion of Found", err)
	}
}

// TestVirusFacts: the facts an Enricher gives at stage data are what the
// rules see (names, error), and nothing before.
func TestVirusFacts(t *testing.T) {
	s := mustLoad(t, `rules:
  - name: scan-failed
    when: 'Virus.Error != ""'
    action: tempfail
  - name: virus
    when: 'Virus.Found && "Eicar-Test" in Virus.Names'
    action: reject
`, nil, nil)
	for _, tc := range []struct {
		v    Virus
		want Action
	}{
		{Virus{}, ActionContinue},
		{Virus{Found: true, Names: []string{"Eicar-Test"}}, ActionReject},
		{Virus{Found: true, Names: []string{"Other"}}, ActionContinue},
		{Virus{Error: "clamd 127.0.0.1:3310: connection refused"}, ActionTempfail},
	} {
		e := s.NewEvaluator()
		f := &Facts{Msg: &mimeparse.Message{}, Virus: tc.v}
		if got := e.Eval(StageData, f).Action; got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.v, got, tc.want)
		}
	}
}

// TestVirusTestFacts: a policy test gives clamd's verdict and the
// front-end's defects with facts: (docs/DESIGN.md "Wave 2 contract").
func TestVirusTestFacts(t *testing.T) {
	src := `rules:
  - name: virus
    when: 'Virus.Found'
    action: reject
  - name: scan-failed
    when: 'Virus.Error != ""'
    action: tempfail
  - name: too-big
    when: '"limit-virus-scan-size" in Defects'
    action: reject
tests:
  - message: m.eml
    facts: {virus: {found: true, names: [Eicar-Test]}}
    expect: {verdict: reject, rules: [virus]}
  - message: m.eml
    facts: {virus: {error: "connection refused"}}
    expect: {verdict: tempfail, rules: [scan-failed]}
  - message: m.eml
    facts: {defects: [limit-virus-scan-size]}
    expect: {verdict: reject, rules: [too-big]}
  - message: m.eml
    expect: {verdict: accept, rules: []}
`
	fsys := fstest.MapFS{"p.yaml": {Data: []byte(src)}, "m.eml": {Data: []byte("Subject: hi\r\n\r\nbody\r\n")}}
	s, err := LoadFS(fsys, Config{Policies: []string{"p.yaml"}}, nil)
	tcheck(t, err, "load")
	res := s.RunTests()
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		if !r.Pass {
			t.Errorf("line %d: %v", r.Line, r.Problems)
		}
	}
	for _, bad := range []string{
		"facts: {virus: {found: maybe, names: [x]}}",
		"facts: {virus: {found: true}}",
		"facts: {virus: {names: {a: b}}}",
	} {
		src := "rules:\n  - name: a\n    when: 'Virus.Found'\n    action: reject\ntests:\n  - message: m.eml\n    " + bad + "\n    expect: {verdict: reject}\n"
		_, err := LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(src)}, "m.eml": {Data: []byte("\r\n")}}, Config{Policies: []string{"p.yaml"}}, nil)
		if err == nil {
			t.Errorf("%s: loaded without error", bad)
		}
	}
}

// TestStaticFactsDefects: the defects given are added once.
func TestStaticFactsDefects(t *testing.T) {
	m := &mimeparse.Message{Defects: []string{"x"}}
	f := &Facts{Msg: m}
	sf := &StaticFacts{Defects: []string{"limit-virus-scan-size", "x"}}
	sf.Enrich(StageRcpt, f)
	if len(m.Defects) != 1 {
		t.Fatalf("defects added before stage data: %v", m.Defects)
	}
	sf.Enrich(StageData, f)
	sf.Enrich(StageData, f)
	if !slices.Equal(m.Defects, []string{"x", "limit-virus-scan-size"}) {
		t.Fatalf("defects %v", m.Defects)
	}
}
