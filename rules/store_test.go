package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"mailgate/mimeparse"
)

// downStore is a Store that cannot answer, as Redis down.
type downStore struct{ calls int }

func (d *downStore) Rate(string, time.Duration) (int, error) {
	d.calls++
	return 0, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
}

func (d *downStore) Greylist(string, time.Duration) (bool, error) {
	d.calls++
	return false, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
}

// TestStoreDownTempfails: when the state cannot answer, the rules that
// read it tempfail (451 4.3.0), never pass, whatever rule_error says; the
// error wraps ErrState, so the front-end can count it.
func TestStoreDownTempfails(t *testing.T) {
	srcs := map[string]Stage{
		"rules:\n  - name: limit\n    stage: mail\n    when: 'rate(Envelope.From, \"1h\") > 3'\n    action: tempfail\n":                  StageMail,
		"rules:\n  - name: limit\n    stage: mail\n    when: 'rate(Envelope.From + \"x\", \"1h\") > 3 || false'\n    action: tempfail\n": StageMail,
		"rules:\n  - name: grey\n    stage: rcpt\n    action: greylist\n":                                                                StageRcpt,
		"rules:\n  - name: grey\n    stage: data\n    action: greylist\n":                                                                StageData,
		"rules:\n  - name: t\n    stage: data\n    headers: {add: {X-Rate: '{{ rate(Envelope.From, \"1m\") }}'}}\n":                      StageData,
	}
	for src, stage := range srcs {
		for _, cont := range []bool{false, true} {
			st := &downStore{}
			s, err := loadSrc(t, src, nil, st)
			tcheck(t, err, "load")
			if cont {
				s.ruleErrorContinue = true
			}
			f := &Facts{Client: Client{IP: "192.0.2.1"}, Envelope: Envelope{From: "a@example.com", Rcpts: []string{"b@example.org"}},
				Rcpt: "b@example.org", Msg: &mimeparse.Message{}}
			v := s.NewEvaluator().Eval(stage, f)
			if v.Action != ActionTempfail || v.Reply != ReplyStateError {
				t.Errorf("%q (continue=%v): %s %v, want tempfail %v", src, cont, v.Action, v.Reply, ReplyStateError)
			}
			if st.calls == 0 || len(v.Errors) != 1 || !errors.Is(v.Errors[0], ErrState) {
				t.Errorf("%q: errors %v (calls %d), want one wrapping ErrState", src, v.Errors, st.calls)
			} else if !strings.Contains(v.Errors[0].Error(), "connection refused") {
				t.Errorf("error %q does not say why", v.Errors[0])
			}
		}
	}
	// Another rule's error with rule_error: continue is still skipped.
	s := mustLoad(t, "rules:\n  - name: bad\n    stage: mail\n    when: 'int(Envelope.From) > 1'\n    action: reject\n", nil, &downStore{})
	s.ruleErrorContinue = true
	if v := s.NewEvaluator().Eval(StageMail, &Facts{Envelope: Envelope{From: "x"}}); v.Action != ActionContinue {
		t.Errorf("a non-state error with continue: %s", v.Action)
	}
}
