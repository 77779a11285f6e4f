package policies_test

import (
	"bytes"
	"os"
	"strconv"
	"testing"

	"mailgate/mimeparse"
	"mailgate/rules"
)

// BenchmarkPacks evaluates the shipped packs on typical messages, parse
// excluded: one whole transaction (connect, helo, mail, one rcpt, data) per
// iteration, as the proxy runs it. "all" is every pack meant to be
// combined (dangerous-attachments, office-macros, compliance-headers,
// spam-basics: 25 rules).
//
//	go test ./policies -run '^$' -bench Packs -benchmem
func BenchmarkPacks(b *testing.B) {
	sets := []struct {
		name  string
		files []string
	}{
		{"default", []string{"default.yaml"}},
		{"dangerous-attachments", []string{"dangerous-attachments.yaml"}},
		{"all", []string{"dangerous-attachments.yaml", "office-macros.yaml", "compliance-headers.yaml", "spam-basics.yaml"}},
	}
	// Distinct clients and senders, so the rate limits of spam-basics
	// measure their cost without firing.
	ips, senders := make([]string, 1<<16), make([]string, 1<<16)
	for i := range ips {
		ips[i] = "10." + strconv.Itoa(i>>8) + "." + strconv.Itoa(i&255) + ".1"
		senders[i] = "s" + strconv.Itoa(i) + "@example.com"
	}
	msgs := []string{"../testdata/benign/pdf-attachment.eml", "../testdata/benign/html-alternative.eml", "../testdata/benign/docx-clean.eml"}
	for _, s := range sets {
		set, err := rules.Load(rules.Config{Policies: s.files, Lists: packLists["compliance-headers.yaml"]}, rules.NewState(4096, nil))
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			raw, err := os.ReadFile(m)
			if err != nil {
				b.Fatal(err)
			}
			msg, err := mimeparse.Parse(bytes.NewReader(raw), mimeparse.DefaultLimits())
			if err != nil {
				b.Fatal(err)
			}
			name := s.name + "/" + m[len("../testdata/benign/"):len(m)-len(".eml")]
			b.Run(name, func(b *testing.B) {
				ev := set.NewEvaluator()
				f := rules.Facts{
					Client:   rules.Client{IP: "192.0.2.1", Port: 25, HELO: "mail.example.com"},
					Envelope: rules.Envelope{From: "sender@example.com", Size: len(raw)},
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i = (i + 1) & (1<<16 - 1)
					f.Client.IP, f.Envelope.From = ips[i], senders[i]
					f.Msg, f.Rcpt, f.Envelope.Rcpts = nil, "", f.Envelope.Rcpts[:0]
					for _, st := range []rules.Stage{rules.StageConnect, rules.StageHelo, rules.StageMail} {
						if v := ev.Eval(st, &f); v.Action != rules.ActionContinue {
							b.Fatalf("%s: %s by %s", st, v.Action, v.Rule)
						}
					}
					f.Rcpt = "rcpt@example.net"
					ev.Eval(rules.StageRcpt, &f)
					f.Envelope.Rcpts = append(f.Envelope.Rcpts, f.Rcpt)
					f.Rcpt, f.Msg = "", msg
					if v := ev.Eval(rules.StageData, &f); v.Action != rules.ActionContinue {
						b.Fatalf("data: %s by %s", v.Action, v.Rule)
					}
				}
			})
		}
	}
}
