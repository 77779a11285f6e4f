package rules

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"mailgate/mimeparse"
)

func fsOf(src string) fstest.MapFS { return fstest.MapFS{"p.yaml": {Data: []byte(src)}} }

// TestEnvFields checks every field of the environment against the facts of
// testFacts: each expression must be true, and its negation must not be.
func TestEnvFields(t *testing.T) {
	type tc struct {
		stage Stage
		expr  string
	}
	cases := []tc{
		{StageConnect, `Client.IP == "192.0.2.7"`},
		{StageConnect, `Client.Port == 40000`},
		{StageConnect, `Client.HELO == "mx.example.com"`},
		{StageConnect, `Client.TLS`},
		{StageConnect, `Client.AuthUser == ""`},
		{StageConnect, `Client.Listener == "127.0.0.1:2525"`},
		{StageMail, `Envelope.From == "alice@Example.com"`},
		{StageMail, `Envelope.FromDomain == "example.com"`},
		{StageMail, `Envelope.Rcpts == ["bob@example.org", "carol@example.net"]`},
		{StageMail, `Envelope.RcptDomains == ["example.org", "example.net"]`},
		{StageMail, `Envelope.Size == 9000`},
		{StageMail, `Envelope.SMTPUTF8`},
		{StageRcpt, `Rcpt == "carol@example.net"`},
		{StageData, `Header("subject") == "Invoice 42"`},
		{StageData, `Header("X-Nope") == ""`},
		{StageData, `HeaderAll("Received") == ["from a by b", "from c by d"]`},
		{StageData, `HasHeader("x-mailer") && !HasHeader("X-Spam")`},
		{StageData, `Subject == "Invoice 42"`},
		{StageData, `From == "Alice@Example.COM"`},
		{StageData, `FromDomain == "example.com"`},
		{StageData, `To == ["bob@example.org", "carol@example.net"]`},
		{StageData, `Cc == ["dave@example.org"]`},
		{StageData, `MessageID == "<42@example.com>"`},
		{StageData, `Size == 9000`},
		{StageData, `len(Parts) == 7 && Parts[0].Path == "0" && Parts[0].IsMultipart`},
		{StageData, `map(Attachments, .Path) == ["2", "3", "4"]`},
		{StageData, `any(Attachments, .Executable && .Ext == "exe" && .Filename == "invoice.pdf.exe" && .Size == 1024)`},
		{StageData, `any(Attachments, .DetectedType == "application/vnd.microsoft.portable-executable" && .IsAttachment && .Disposition == "attachment")`},
		{StageData, `any(Attachments, .Header("x-part-note") == "exe" && .Depth == 1 && .ContentType == "application/octet-stream")`},
		{StageData, `any(Attachments, .Macros && .Ext == "docm")`},
		{StageData, `any(Attachments, any(.Archive, .Ext == "js" && .Name == "run.js" && .Depth == 1 && !.Executable && !.Encrypted))`},
		{StageData, `any(Attachments, "photos.js.zip" in .Names && "zip-name-mismatch" in .Defects)`},
		{StageData, `any(Parts, .Charset == "utf-8" && .SHA256 == "` + strings.Repeat("1", 64) + `")`},
		{StageData, `Text contains "invoice"`},
		{StageData, `"missing-final-boundary" in Defects`},
		{StageData, `Score == 0 && len(Tags) == 0`},
		{StageData, `domain("X <Bob@Example.ORG>") == "example.org" && domain("nobody") == ""`},
		{StageData, `lower(Subject) == "invoice 42"`},
		{StageData, `Client.IP == "192.0.2.7" && Envelope.From != ""`},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d %s", i, c.expr), func(t *testing.T) {
			src := fmt.Sprintf("rules:\n  - name: yes\n    stage: %s\n    when: '%s'\n  - name: no\n    stage: %s\n    when: 'not (%s)'\n",
				c.stage, c.expr, c.stage, c.expr)
			s := mustLoad(t, src, nil, nil)
			f := testFacts()
			f.Rcpt = "carol@example.net"
			v := s.NewEvaluator().Eval(c.stage, f)
			tcompare(t, "errors", v.Errors, []error(nil))
			tcompare(t, "rules", v.Rules, []string{"yes"})
		})
	}
}

// TestActions checks every action's verdict and that a terminal action
// stops evaluation.
func TestActions(t *testing.T) {
	cases := []struct {
		action, reply string
		want          Action
		wantReply     Reply
	}{
		{"accept", "", ActionAccept, Reply{}},
		{"accept", "250 2.0.0 Welcome", ActionAccept, Reply{250, [3]int{2, 0, 0}, "Welcome"}},
		{"reject", "", ActionReject, ReplyRejected},
		{"reject", "554 5.7.1 Executables are not accepted", ActionReject, Reply{554, [3]int{5, 7, 1}, "Executables are not accepted"}},
		{"tempfail", "", ActionTempfail, ReplyTempfailed},
		{"tempfail", "452 4.3.1 Full", ActionTempfail, Reply{452, [3]int{4, 3, 1}, "Full"}},
		{"discard", "", ActionDiscard, Reply{}},
		{"quarantine", "", ActionQuarantine, Reply{}},
		{"continue", "", ActionContinue, Reply{}},
	}
	for _, c := range cases {
		t.Run(c.action+" "+c.reply, func(t *testing.T) {
			src := "rules:\n  - name: first\n    action: " + c.action + "\n"
			if c.reply != "" {
				src += "    reply: '" + c.reply + "'\n"
			}
			src += "  - name: second\n    score: 1\n"
			s := mustLoad(t, src, nil, nil)
			v := s.NewEvaluator().Eval(StageData, testFacts())
			tcompare(t, "action", v.Action, c.want)
			tcompare(t, "reply", v.Reply, c.wantReply)
			if c.want == ActionContinue {
				tcompare(t, "rules", v.Rules, []string{"first", "second"})
				tcompare(t, "rule", v.Rule, "")
			} else {
				tcompare(t, "rules", v.Rules, []string{"first"})
				tcompare(t, "rule", v.Rule, "first")
			}
		})
	}
}

func TestDefaultsAndNoMatch(t *testing.T) {
	s := mustLoad(t, "rules:\n  - name: never\n    when: 'false'\n    action: reject\n", nil, nil)
	v := s.NewEvaluator().Eval(StageData, testFacts())
	tcompare(t, "verdict", v, Verdict{Action: ActionContinue})
	// A stage with no rules, and a data stage without a message.
	tcompare(t, "connect", s.NewEvaluator().Eval(StageConnect, testFacts()), Verdict{Action: ActionContinue})
	f := testFacts()
	f.Msg = nil
	tcompare(t, "no message", s.NewEvaluator().Eval(StageData, f), Verdict{Action: ActionContinue})
}

// TestEdits checks that edits, scores and tags accumulate, and that the env
// sees Score and Tags of earlier rules.
func TestEdits(t *testing.T) {
	src := `rules:
  - name: tag-external
    when: 'not (Envelope.FromDomain in ["example.org"])'
    subject_prefix: '[EXT] '
    headers:
      add: {X-External: 'yes', X-Score-Was: '{{ Score }} from {{ Client.IP }} to {{ Envelope.Rcpts }}'}
      set: {X-Classification: 'internal; {{ lower(Subject) }}'}
      remove: [X-Internal-Route]
    score: 1.5
    tags: [external]
  - name: strip-macros
    strip: 'filter(Attachments, .Macros)'
    tags: [macro, external]
  - name: strip-exe-and-macros
    strip: 'filter(Attachments, .Executable || .Macros)'
  - name: strip-nothing
    strip: 'filter(Attachments, .Encrypted)'
    score: 100
  - name: journal
    recipients: {add: [journal@example.org], remove: [carol@example.net]}
  - name: second-prefix
    subject_prefix: '[SCORE {{ Score }}] '
    score: 2
  - name: sees-earlier
    when: 'Score == 3.5 && Tags == ["external", "macro"]'
    headers: {add: {X-Injected: "{{ Header(\"X-Evil\") }}"}}
`
	s := mustLoad(t, src, nil, nil)
	f := testFacts()
	f.Msg.Fields = append(f.Msg.Fields, testMessage().Fields[0])
	f.Msg.Fields[len(f.Msg.Fields)-1].Name, f.Msg.Fields[len(f.Msg.Fields)-1].Value = "X-Evil", "a\r\nBcc: victim@example.net"
	v := s.NewEvaluator().Eval(StageData, f)
	tcompare(t, "errors", v.Errors, []error(nil))
	tcompare(t, "action", v.Action, ActionContinue)
	tcompare(t, "rules", v.Rules, []string{"tag-external", "strip-macros", "strip-exe-and-macros", "journal", "second-prefix", "sees-earlier"})
	tcompare(t, "score", v.Score, 3.5)
	tcompare(t, "tags", v.Tags, []string{"external", "macro"})
	tcompare(t, "subject prefix", v.Edits.SubjectPrefix, "[EXT] [SCORE 1.5] ")
	tcompare(t, "strip", v.Edits.Strip, []Strip{
		{Path: "3", Filename: "report.docm", Rule: "strip-macros"},
		{Path: "2", Filename: "invoice.pdf.exe", Rule: "strip-exe-and-macros"},
	})
	tcompare(t, "rcpt add", v.Edits.RcptAdd, []string{"journal@example.org"})
	tcompare(t, "rcpt remove", v.Edits.RcptRemove, []string{"carol@example.net"})
	tcompare(t, "headers", v.Edits.Headers, []HeaderEdit{
		{Op: "add", Name: "X-External", Value: "yes", Rule: "tag-external"},
		{Op: "add", Name: "X-Score-Was", Value: "0 from 192.0.2.7 to bob@example.org, carol@example.net", Rule: "tag-external"},
		{Op: "set", Name: "X-Classification", Value: "internal; invoice 42", Rule: "tag-external"},
		{Op: "remove", Name: "X-Internal-Route", Rule: "tag-external"},
		{Op: "add", Name: "X-Injected", Value: "a  Bcc: victim@example.net", Rule: "sees-earlier"},
	})
}

func TestSubjectPrefixNotRepeated(t *testing.T) {
	s := mustLoad(t, "rules:\n  - name: p\n    subject_prefix: 'Invoice '\n", nil, nil)
	v := s.NewEvaluator().Eval(StageData, testFacts())
	tcompare(t, "prefix", v.Edits.SubjectPrefix, "")
	tcompare(t, "rules", v.Rules, []string{"p"})
}

func TestMonitorMode(t *testing.T) {
	src := `rules:
  - name: would-reject
    when: 'any(Attachments, .Executable)'
    action: reject
    mode: monitor
    score: 5
    tags: [exe]
    headers: {add: {X-A: b}}
  - name: would-strip
    strip: 'filter(Attachments, .Macros)'
    mode: monitor
  - name: would-strip-nothing
    strip: 'filter(Attachments, .Encrypted)'
    mode: monitor
  - name: enforced
    when: 'Score == 0'
    action: quarantine
`
	s := mustLoad(t, src, nil, nil)
	v := s.NewEvaluator().Eval(StageData, testFacts())
	tcompare(t, "verdict", v, Verdict{Action: ActionQuarantine, Rule: "enforced", Rules: []string{"enforced"},
		Monitor: []string{"would-reject", "would-strip"}})
}

func TestRuleError(t *testing.T) {
	src := `rules:
  - name: broken
    when: 'Parts[10].Size > 0'
    action: reject
  - name: after
    score: 1
`
	for _, mode := range []string{"", RuleErrorTempfail, RuleErrorContinue} {
		t.Run("rule_error="+mode, func(t *testing.T) {
			s, err := LoadFS(fsOf(src), Config{Policies: []string{"p.yaml"}, RuleError: mode}, nil)
			tcheck(t, err, "load")
			v := s.NewEvaluator().Eval(StageData, testFacts())
			if len(v.Errors) != 1 || !strings.Contains(v.Errors[0].Error(), "rule broken (p.yaml:2)") ||
				!strings.Contains(v.Errors[0].Error(), "index out of range") {
				t.Fatalf("errors: %v", v.Errors)
			}
			if mode == RuleErrorContinue {
				tcompare(t, "action", v.Action, ActionContinue)
				tcompare(t, "rules", v.Rules, []string{"after"})
				return
			}
			tcompare(t, "action", v.Action, ActionTempfail)
			tcompare(t, "reply", v.Reply.String(), "451 4.3.0 Temporary local problem, try again later")
			tcompare(t, "rule", v.Rule, "broken")
			tcompare(t, "rules", v.Rules, []string(nil))
		})
	}
}

func TestRuleErrorLeavesNoEdits(t *testing.T) {
	src := `rules:
  - name: half
    score: 3
    headers: {add: {X-A: 'ok', X-B: '{{ Parts[99].Path }}'}}
`
	s, err := LoadFS(fsOf(src), Config{Policies: []string{"p.yaml"}, RuleError: RuleErrorContinue}, nil)
	tcheck(t, err, "load")
	v := s.NewEvaluator().Eval(StageData, testFacts())
	tcompare(t, "errors", len(v.Errors), 1)
	tcompare(t, "score", v.Score, 0.0)
	tcompare(t, "headers", v.Edits.Headers, []HeaderEdit(nil))
}

func TestStrip(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`filter(Attachments, .Macros)`, []string{"3"}},
		{`Attachments`, []string{"2", "3", "4"}},
		{`filter(Parts, .Ext in ["exe", "zip"])`, []string{"2", "4"}},
		{`Parts[4:5]`, []string{"2"}},
		{`[]`, nil},
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			s := mustLoad(t, "rules:\n  - name: s\n    strip: '"+c.expr+"'\n", nil, nil)
			v := s.NewEvaluator().Eval(StageData, testFacts())
			tcompare(t, "errors", v.Errors, []error(nil))
			var got []string
			for _, st := range v.Edits.Strip {
				got = append(got, st.Path)
			}
			tcompare(t, "stripped", got, c.want)
		})
	}
	// A list of something else is a runtime error naming the rule.
	s := mustLoad(t, "rules:\n  - name: s\n    strip: 'map(Attachments, .Path)'\n", nil, nil)
	v := s.NewEvaluator().Eval(StageData, testFacts())
	if len(v.Errors) != 1 || !strings.Contains(v.Errors[0].Error(), "rule s") || !strings.Contains(v.Errors[0].Error(), "not a part") {
		t.Fatalf("errors: %v", v.Errors)
	}
	tcompare(t, "action", v.Action, ActionTempfail)
}

// TestStages checks that each stage runs only its rules, that rcpt rules
// decide for f.Rcpt, and connect/helo/mail verdicts.
func TestStages(t *testing.T) {
	src := `rules:
  - name: trusted
    stage: connect
    when: 'cidr(Client.IP, "127.0.0.0/8")'
    action: accept
  - name: bad-helo
    stage: helo
    when: 'Client.HELO == Client.IP'
    action: reject
    reply: '550 5.7.1 Bad HELO'
  - name: null-sender
    stage: mail
    when: 'Envelope.From == ""'
    tags: [bounce]
  - name: no-carol
    stage: rcpt
    when: 'Rcpt == "carol@example.net"'
    action: reject
    reply: '550 5.1.1 No such user'
  - name: content
    when: 'true'
    score: 1
`
	s := mustLoad(t, src, nil, nil)
	e := s.NewEvaluator()
	f := testFacts()
	tcompare(t, "connect", e.Eval(StageConnect, f).Action, ActionContinue)
	f.Client.IP = "127.0.0.1"
	tcompare(t, "connect trusted", e.Eval(StageConnect, f).Rule, "trusted")
	f.Client.HELO = "127.0.0.1"
	v := e.Eval(StageHelo, f)
	tcompare(t, "helo", v.Reply.String(), "550 5.7.1 Bad HELO")
	f.Envelope.From = ""
	tcompare(t, "mail", e.Eval(StageMail, f).Tags, []string{"bounce"})
	f.Rcpt = "bob@example.org"
	tcompare(t, "rcpt bob", e.Eval(StageRcpt, f).Action, ActionContinue)
	f.Rcpt = "carol@example.net"
	tcompare(t, "rcpt carol", e.Eval(StageRcpt, f).Reply.Code, 550)
	v = e.Eval(StageData, f)
	tcompare(t, "data", v.Rules, []string{"content"})
	tcompare(t, "stages", [5]bool{s.HasStage(StageConnect), s.HasStage(StageHelo), s.HasStage(StageMail), s.HasStage(StageRcpt), s.HasStage(StageData)}, [5]bool{true, true, true, true, true})
	tcompare(t, "uses", [3]bool{s.Uses("Client"), s.Uses("Rcpt"), s.Uses("Text")}, [3]bool{true, true, false})
	s = mustLoad(t, "rules:\n  - name: a\n    when: 'any(Attachments, any(.Archive, .Executable))'\n    headers: {add: {X-S: '{{ Parts[0].SHA256 }}'}}\n", nil, nil)
	tcompare(t, "uses property", [4]bool{s.UsesProperty("Archive"), s.UsesProperty("Executable"), s.UsesProperty("SHA256"), s.UsesProperty("Macros")}, [4]bool{true, true, true, false})
}

func TestRate(t *testing.T) {
	c := newClock()
	st := NewState(100, c.now)
	src := `rules:
  - name: too-many
    stage: connect
    when: 'rate(Client.IP, "1m") > 2'
    action: tempfail
    reply: '421 4.7.0 Slow down'
`
	s := mustLoad(t, src, nil, st)
	e := s.NewEvaluator()
	f := testFacts()
	var got []Action
	for i := 0; i < 4; i++ {
		got = append(got, e.Eval(StageConnect, f).Action)
		c.advance(10 * time.Second)
	}
	tcompare(t, "within a minute", got, []Action{ActionContinue, ActionContinue, ActionTempfail, ActionTempfail})
	f.Client.IP = "192.0.2.8" // another key
	tcompare(t, "other key", e.Eval(StageConnect, f).Action, ActionContinue)
	f.Client.IP = "192.0.2.7"
	c.advance(2 * time.Minute)
	tcompare(t, "after the window", e.Eval(StageConnect, f).Action, ActionContinue)
	// Another Set (a reload) shares the State.
	s2 := mustLoad(t, src, nil, st)
	s2.NewEvaluator().Eval(StageConnect, f)
	tcompare(t, "state survives reload", s2.NewEvaluator().Eval(StageConnect, f).Action, ActionTempfail)
}

func TestGreylist(t *testing.T) {
	c := newClock()
	st := NewState(100, c.now)
	src := `rules:
  - name: grey
    stage: rcpt
    when: 'not cidr(Client.IP, "10.0.0.0/8")'
    action: greylist
    greylist: {delay: 5m}
  - name: after
    stage: rcpt
    score: 1
`
	s := mustLoad(t, src, nil, st)
	e := s.NewEvaluator()
	f := testFacts()
	f.Rcpt = "bob@example.org"
	v := e.Eval(StageRcpt, f)
	tcompare(t, "first attempt", v.Action, ActionTempfail)
	tcompare(t, "reply", v.Reply.String(), "450 4.7.1 Greylisted, please try again later")
	tcompare(t, "rules", v.Rules, []string{"grey"})
	c.advance(time.Minute)
	tcompare(t, "early retry", e.Eval(StageRcpt, f).Action, ActionTempfail)
	c.advance(5 * time.Minute)
	v = e.Eval(StageRcpt, f)
	tcompare(t, "retry after delay", v.Action, ActionContinue)
	tcompare(t, "passed rules", v.Rules, []string{"after"})
	f.Client.IP = "192.0.2.200" // same /24
	tcompare(t, "same network", e.Eval(StageRcpt, f).Action, ActionContinue)
	f.Rcpt = "carol@example.net"
	tcompare(t, "other recipient", e.Eval(StageRcpt, f).Action, ActionTempfail)
	f.Client.IP = "10.1.1.1"
	tcompare(t, "exempt network", e.Eval(StageRcpt, f).Action, ActionContinue)

	// IPv6 clients are grouped by /64.
	f.Client.IP, f.Rcpt = "2001:db8:1:2::1", "bob@example.org"
	e.Eval(StageRcpt, f)
	c.advance(6 * time.Minute)
	f.Client.IP = "2001:db8:1:2:ffff::9"
	tcompare(t, "same /64", e.Eval(StageRcpt, f).Action, ActionContinue)
	f.Client.IP = "2001:db8:1:3::1"
	tcompare(t, "other /64", e.Eval(StageRcpt, f).Action, ActionTempfail)
}

func TestGreylistDataStage(t *testing.T) {
	c := newClock()
	s := mustLoad(t, "rules:\n  - name: grey\n    action: greylist\n    reply: '451 4.7.1 Come back later'\n", nil, NewState(10, c.now))
	e := s.NewEvaluator()
	v := e.Eval(StageData, testFacts())
	tcompare(t, "reply", v.Reply.String(), "451 4.7.1 Come back later")
	c.advance(4 * time.Minute)
	tcompare(t, "early", e.Eval(StageData, testFacts()).Action, ActionTempfail)
	c.advance(time.Minute) // default delay 5m
	tcompare(t, "passed", e.Eval(StageData, testFacts()).Action, ActionContinue)
}

// TestConcurrentEval: one Set, one State, an Evaluator per goroutine (run
// with -race).
func TestConcurrentEval(t *testing.T) {
	st := NewState(100, nil)
	s := mustLoad(t, "rules:\n  - name: r\n    stage: rcpt\n    when: 'rate(Rcpt, \"1m\") > 1000'\n    action: reject\n  - name: g\n    stage: rcpt\n    action: greylist\n  - name: d\n    when: 'any(Attachments, .Executable)'\n    headers: {add: {X-A: '{{ Subject }}'}}\n", nil, st)
	done := make(chan Verdict, 4)
	for i := 0; i < 4; i++ {
		go func() {
			e := s.NewEvaluator()
			f := testFacts()
			f.Rcpt = "bob@example.org"
			var v Verdict
			for j := 0; j < 200; j++ {
				e.Eval(StageRcpt, f)
				v = e.Eval(StageData, f)
			}
			done <- v
		}()
	}
	for i := 0; i < 4; i++ {
		v := <-done
		tcompare(t, "rules", v.Rules, []string{"d"})
		tcompare(t, "header", v.Edits.Headers[0].Value, "Invoice 42")
	}
}

func TestHeaderSafe(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain\tvalue", "plain\tvalue"},
		{"a\r\nBcc: x@example.net", "a  Bcc: x@example.net"},
		{"nul\x00byte\x7f", "nul byte "},
		{strings.Repeat("a", 1000), strings.Repeat("a", 900)},
		{strings.Repeat("a", 899) + "é", strings.Repeat("a", 899)},
	}
	for _, c := range cases {
		tcompare(t, fmt.Sprintf("%.20q", c.in), headerSafe(c.in), c.want)
	}
	// Through a template, from a decoded header holding a NUL.
	s := mustLoad(t, "rules:\n  - name: h\n    headers: {add: {X-Copy: '[{{ Header(\"X-Evil\") }}]'}}\n", nil, nil)
	f := testFacts()
	f.Msg.Fields = append(f.Msg.Fields, mimeparse.Field{Name: "X-Evil", Value: "a\x00b\nc"})
	tcompare(t, "value", s.NewEvaluator().Eval(StageData, f).Edits.Headers[0].Value, "[a b c]")
}

// TestUsesPropertyComputed: a member read by a computed name, or a whole
// value shown, counts as reading every member, so serve still hashes the
// parts for a rule that reads SHA256 without naming it (mimeparse
// Limits.NoHash).
func TestUsesPropertyComputed(t *testing.T) {
	for _, tc := range []struct {
		when string
		want bool
	}{
		{`any(Attachments, .SHA256 == "x")`, true},
		{`any(Attachments, toJSON(#) contains "x")`, true},
		{`any(Attachments, #.SHA256 == "x")`, true},
		{`Parts[0].SHA256 == "x"`, true},
		{`any(Attachments, string(#) contains "x")`, true},
		{`any(Attachments, .Executable)`, false},
		{`len(Attachments) > 0 && Attachments[0].Size > 10`, false},
	} {
		s := mustLoad(t, "rules:\n  - name: a\n    when: '"+tc.when+"'\n", nil, nil)
		if got := s.UsesProperty("SHA256"); got != tc.want {
			t.Errorf("%s: UsesProperty(SHA256) = %v, want %v", tc.when, got, tc.want)
		}
	}
}
