package rules

import (
	"strings"
	"testing"
)

// TestLookupFactsLoad: a lookup fact read before its stage, without the
// configuration that feeds it, or a DNSBL name not configured, is a load
// error; lint -p and test -p (FactSources.All) accept what is well staged.
func TestLookupFactsLoad(t *testing.T) {
	rule := func(stage, when string) string {
		return "rules:\n  - name: a\n    stage: " + stage + "\n    when: '" + when + "'\n    action: reject\n"
	}
	fed := FactSources{DNS: true, DNSBL: []string{"spamhaus"}, SPF: true, DKIM: true, DMARC: true, ARC: true}
	cases := []struct {
		src  string
		srcs FactSources
		want string // "" loads
	}{
		{rule("connect", `Auth.SPF == "fail"`), FactSources{All: true}, "Auth.SPF is only known from stage mail on (this rule runs at stage connect)"},
		{rule("mail", `Auth.SPF == "fail"`), FactSources{All: true}, ""},
		{rule("mail", `Auth.SPF == "fail"`), FactSources{}, "Auth.SPF needs auth_checks: {spf: true} in the configuration"},
		{rule("rcpt", `Auth.DMARC == "fail"`), fed, "Auth.DMARC is only known from stage data on"},
		{rule("data", `Auth["DMARCPolicy"] == "reject"`), FactSources{SPF: true}, "Auth.DMARCPolicy needs auth_checks: {dmarc: true}"},
		{rule("data", `any(Auth.DKIM, .Result == "fail" && .Aligned)`), fed, ""},
		{rule("connect", `Client.PTR == ""`), FactSources{DNSBL: []string{"x"}}, "Client.PTR needs dns: in the configuration"},
		{rule("connect", `!Client.FCrDNS`), fed, ""},
		{rule("connect", `len(Client.Blocklisted) > 0`), FactSources{DNS: true}, "Client.Blocklisted needs dnsbl:"},
		{rule("connect", `len(DNSBL.spamhaus) > 0`), fed, ""},
		{rule("connect", `len(DNSBL.spamhsu) > 0`), fed, "DNSBL spamhsu is not configured (config dnsbl:) (did you mean spamhaus?)"},
		{rule("connect", `len(DNSBL.anything) > 0`), FactSources{All: true}, ""},
		{rule("connect", `"x" in DNSBL`), FactSources{}, "DNSBL needs the dnsbl: section"},
		{rule("data", `Auth.ARC == "fail"`), FactSources{ARC: true}, ""},
	}
	for _, c := range cases {
		_, err := LoadFS(fsOf(c.src), Config{Policies: []string{"p.yaml"}, Facts: c.srcs}, nil)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q %+v: %v", c.src, c.srcs, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q %+v: got %v, want %q", c.src, c.srcs, err, c.want)
		}
	}
}

// TestLookupFactsEval: the facts reach the rules from their stage on
// through an Enricher (StaticFacts, as check --offline and the tests).
func TestLookupFactsEval(t *testing.T) {
	src := `rules:
  - name: blocked
    stage: connect
    when: '"local" in Client.Blocklisted && DNSBL.local[0] == "127.0.0.2"'
    action: reject
  - name: spf-fail
    stage: mail
    when: 'Auth.SPF == "fail"'
    score: 2
  - name: no-fcrdns
    stage: helo
    when: '!Client.FCrDNS && Client.PTR == ""'
    score: 1
  - name: dmarc-reject
    when: 'Auth.DMARC == "fail" && Auth.DMARCPolicy == "reject" && Auth.ARC == "none" && !any(Auth.DKIM, .Aligned)'
    action: reject
`
	s, err := LoadFS(fsOf(src), Config{Policies: []string{"p.yaml"}, Facts: FactSources{All: true}}, nil)
	tcheck(t, err, "load")
	run := func(sf *StaticFacts) SimResult {
		return Simulate(s.NewEvaluator(), SimInput{Client: Client{IP: "192.0.2.1", HELO: "x"}, From: "a@example.com",
			Rcpts: []string{"b@example.org"}, Msg: testMessage(), Size: 10, Enrich: sf})
	}
	r := run(&StaticFacts{DNSBL: map[string][]string{"local": {"127.0.0.2"}}})
	tcompare(t, "listed", r.Decision.Rule, "blocked")
	r = run(&StaticFacts{DNSBL: map[string][]string{"local": nil}, Auth: Auth{SPF: "fail", DMARC: "fail", DMARCPolicy: "reject",
		DKIM: []DKIMResult{{Domain: "example.com", Result: "fail"}}}})
	tcompare(t, "dmarc", r.Decision.Rule, "dmarc-reject")
	tcompare(t, "score", r.Tx.Score(), 3.0)
	r = run(&StaticFacts{PTR: "mx.example.com", FCrDNS: true, Auth: Auth{SPF: "pass", DMARC: "pass", DMARCPolicy: "reject"}})
	tcompare(t, "clean", r.Decision.Action, ActionAccept)
	tcompare(t, "clean rules", len(r.Tx.Rules()), 0)
}

// TestRunTestsLookupFacts: the facts: key gives auth, dnsbl and client
// lookups to a policy test, and checks their vocabulary at load.
func TestRunTestsLookupFacts(t *testing.T) {
	src := `rules:
  - name: dmarc-reject
    when: 'Auth.DMARC == "fail" && Auth.DMARCPolicy == "reject"'
    action: reject
  - name: listed
    stage: connect
    when: 'len(Client.Blocklisted) > 0 && Client.PTR != "ok.example"'
    action: reject
tests:
  - facts: {auth: {spf: fail, dmarc: fail, dmarc_policy: reject}}
    expect: {verdict: reject, rules: [dmarc-reject]}
  - facts: {auth: {dmarc: fail, dmarc_policy: quarantine, dkim: [{domain: a.example, selector: s, result: pass, aligned: false}]}}
    expect: {verdict: accept}
  - facts: {dnsbl: {spamhaus: ["127.0.0.2"]}, client: {ptr: mail.example.org, fcrdns: true}}
    expect: {verdict: reject, rules: [listed]}
  - facts: {dnsbl: {spamhaus: ["127.0.0.2"]}, client: {ptr: ok.example}}
    expect: {verdict: accept}
  - expect: {verdict: accept}
`
	s, err := LoadFS(fsOf(src), Config{Policies: []string{"p.yaml"}, Facts: FactSources{All: true}}, nil)
	tcheck(t, err, "load")
	res := s.RunTests()
	tcompare(t, "results", len(res), 5)
	for _, r := range res {
		if !r.Pass {
			t.Errorf("%s:%d: %q", r.File, r.Line, r.Problems)
		}
	}
	_, err = LoadFS(fsOf("rules: []\ntests:\n  - facts: {auth: {spf: failed}}\n    expect: {verdict: accept}\n"), Config{Policies: []string{"p.yaml"}}, nil)
	if err == nil || !strings.Contains(err.Error(), `tests: facts: auth: spf: "failed" is not one of pass, fail, softfail`) {
		t.Fatalf("bad fact: %v", err)
	}
}
