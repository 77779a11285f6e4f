package rules

import "testing"

// TestPregreetStage: Client.Pregreet is known from stage helo on; a rule
// at stage connect that reads it is a load error, as body facts are.
func TestPregreetStage(t *testing.T) {
	for _, src := range []string{
		"rules:\n  - name: a\n    stage: connect\n    when: 'Client.Pregreet'\n",
		"rules:\n  - name: a\n    stage: connect\n    when: 'Client[\"Pregreet\"]'\n",
	} {
		_, err := loadSrc(t, src, nil, nil)
		if err == nil {
			t.Fatalf("%q loaded without error", src)
		}
		tcompare(t, "problems", problems(err)[0][:len("p.yaml:4:")], "p.yaml:4:")
		want := "rule a: when: Client.Pregreet is only known from stage helo on (this rule runs at stage connect)"
		if got := problems(err)[0]; len(got) < len(want) || got[len(got)-len(want):] != want {
			t.Errorf("problem %q, want it to end with %q", got, want)
		}
	}
	for _, stage := range []string{"helo", "mail", "rcpt", "data"} {
		s, err := loadSrc(t, "rules:\n  - name: a\n    stage: "+stage+"\n    when: 'Client.Pregreet'\n    action: reject\n", nil, nil)
		if err != nil {
			t.Fatalf("stage %s: %v", stage, err)
		}
		e := s.NewEvaluator()
		for _, pre := range []bool{false, true} {
			f := &Facts{Client: Client{IP: "192.0.2.1", Pregreet: pre}, Envelope: Envelope{From: "a@example.org"}, Rcpt: "b@example.org"}
			if st := stageOf(stage); st == StageData {
				continue // needs a message; helo to rcpt show the field is read
			}
			v := e.Eval(stageOf(stage), f)
			if got := v.Action == ActionReject; got != pre {
				t.Errorf("stage %s, Pregreet %v: verdict %v", stage, pre, v.Action)
			}
		}
	}
}

func stageOf(name string) Stage {
	for i, n := range stageNames {
		if n == name {
			return Stage(i)
		}
	}
	return StageData
}
