package rules

import (
	"testing"

	"mailgate/mimeparse"
)

// TestTransaction drives Conn and Tx through the stages and checks what
// each decides: the one object behind serve, check and test.
func TestTransaction(t *testing.T) {
	src := `rules:
  - name: trusted-net
    stage: connect
    when: 'Client.IP == "10.0.0.1"'
    action: accept
  - name: tag-helo
    stage: helo
    when: 'Client.HELO == "tagged"'
    score: 2
    tags: [odd-helo]
  - name: hold-helo
    stage: helo
    when: 'Client.HELO == "hold"'
    action: quarantine
  - name: no-bounce
    stage: mail
    when: 'Envelope.From == "bad@example.org"'
    action: reject
    reply: '550 5.7.1 not you'
  - name: prefix-mail
    stage: mail
    when: 'true'
    score: 0.5
  - name: no-carol
    stage: rcpt
    when: 'Rcpt == "carol@example.net"'
    action: reject
    reply: '550 5.1.1 No such user'
  - name: score-seen
    when: 'Score >= 2 && "odd-helo" in Tags'
    headers: {add: {X-Seen: "{{ Score }}"}}
  - name: prefix-data
    when: 'true'
    subject_prefix: "[EXT] "
  - name: big
    when: 'Envelope.Size > 100'
    action: reject
`
	s := mustLoad(t, src, nil, nil)
	msg := &mimeparse.Message{}
	client := Client{IP: "192.0.2.7", HELO: "mx.example.com"}
	type run struct {
		name     string
		client   Client
		from     string
		rcpts    []string
		size     int
		action   Action
		rules    []string
		headers  int
		prefix   string
		rcptLeft int
	}
	cases := []run{
		{name: "plain", client: client, from: "a@example.org", rcpts: []string{"bob@example.org"}, size: 10,
			action: ActionAccept, rules: []string{"prefix-mail", "prefix-data"}, prefix: "[EXT] ", rcptLeft: 1},
		{name: "connect accept skips every later rule", client: Client{IP: "10.0.0.1", HELO: "x"}, from: "bad@example.org",
			rcpts: []string{"carol@example.net"}, size: 1000, action: ActionAccept, rules: []string{"trusted-net"}, rcptLeft: 1},
		{name: "mail refusal", client: client, from: "bad@example.org", rcpts: []string{"bob@example.org"},
			action: ActionReject, rules: []string{"no-bounce"}},
		{name: "one recipient refused, the other goes on", client: client, from: "a@example.org",
			rcpts: []string{"carol@example.net", "bob@example.org"}, size: 10, action: ActionAccept,
			rules: []string{"prefix-mail", "no-carol", "prefix-data"}, prefix: "[EXT] ", rcptLeft: 1},
		{name: "every recipient refused", client: client, from: "a@example.org", rcpts: []string{"carol@example.net"},
			action: ActionReject, rules: []string{"prefix-mail", "no-carol"}},
		{name: "helo score and tags reach the data stage", client: Client{IP: "192.0.2.7", HELO: "tagged"},
			from: "a@example.org", rcpts: []string{"bob@example.org"}, size: 10, action: ActionAccept,
			rules: []string{"tag-helo", "prefix-mail", "score-seen", "prefix-data"}, headers: 1, prefix: "[EXT] ", rcptLeft: 1},
		{name: "quarantine at helo is the final verdict", client: Client{IP: "192.0.2.7", HELO: "hold"},
			from: "a@example.org", rcpts: []string{"bob@example.org"}, size: 1000, action: ActionQuarantine,
			rules: []string{"hold-helo", "prefix-mail"}, rcptLeft: 1},
		{name: "data refusal", client: client, from: "a@example.org", rcpts: []string{"bob@example.org"}, size: 1000,
			action: ActionReject, rules: []string{"prefix-mail", "prefix-data", "big"}, prefix: "[EXT] ", rcptLeft: 1},
	}
	for _, c := range cases {
		res := Simulate(s.NewEvaluator(), SimInput{Client: c.client, From: c.from, Rcpts: c.rcpts, Msg: msg, Size: c.size})
		tcompare(t, c.name+": action", res.Decision.Action, c.action)
		tcompare(t, c.name+": rules", res.Tx.Rules(), c.rules)
		if res.Decision.Refused() {
			continue
		}
		ed := res.Tx.Edits()
		tcompare(t, c.name+": headers", len(ed.Headers), c.headers)
		tcompare(t, c.name+": prefix", ed.SubjectPrefix, c.prefix)
		tcompare(t, c.name+": recipients", len(res.Tx.Rcpts()), c.rcptLeft)
	}
}

// TestTransactionDeferred checks a trusted forwarder's connect and helo
// stages: they wait for the first MAIL and see the forwarded client, and
// a new client (XCLIENT) forgets what the previous one decided.
func TestTransactionDeferred(t *testing.T) {
	src := `rules:
  - name: block-net
    stage: connect
    when: 'Client.IP == "203.0.113.9"'
    action: reject
    reply: '554 5.7.1 blocked'
  - name: friend
    stage: connect
    when: 'Client.IP == "10.0.0.1"'
    action: accept
  - name: content
    when: 'true'
    action: reject
`
	s := mustLoad(t, src, nil, nil)
	c := NewConn(s.NewEvaluator(), Client{IP: "127.0.0.1"}, true)
	tcompare(t, "connect deferred", c.Connect().Action, ActionContinue)
	tcompare(t, "helo deferred", c.Helo("fwd").Action, ActionContinue)
	c.SetClient(Client{IP: "203.0.113.9", HELO: "orig"})
	tx, d := c.Mail("a@example.org", 0, false)
	tcompare(t, "forwarded client refused at MAIL", d.Reply.String(), "554 5.7.1 blocked")
	tcompare(t, "rules", tx.Rules(), []string{"block-net"})

	c.SetClient(Client{IP: "10.0.0.1", HELO: "orig"})
	tx, d = c.Mail("a@example.org", 0, false)
	tcompare(t, "friend: MAIL goes on", d.Action, ActionContinue)
	tx.AddRcpt("b@example.org")
	tcompare(t, "friend: accepted, content rules skipped", tx.Data(&mimeparse.Message{}, 10).Action, ActionAccept)
	tx, _ = c.Mail("a@example.org", 0, false)
	tx.AddRcpt("b@example.org")
	tcompare(t, "friend: the next transaction too", tx.Data(&mimeparse.Message{}, 10).Action, ActionAccept)

	c.SetClient(Client{IP: "192.0.2.1", HELO: "orig"})
	tx, _ = c.Mail("a@example.org", 0, false)
	tx.AddRcpt("b@example.org")
	tcompare(t, "new client: accept forgotten", tx.Data(&mimeparse.Message{}, 10).Action, ActionReject)
}

// TestTransactionNoPolicy: without an evaluator everything goes on and
// the message is not needed.
func TestTransactionNoPolicy(t *testing.T) {
	c := NewConn(nil, Client{IP: "192.0.2.1"}, false)
	tx, d := c.Mail("a@example.org", 0, false)
	tcompare(t, "mail", d.Action, ActionContinue)
	tcompare(t, "needs message", tx.NeedsMessage(), false)
	tcompare(t, "data", tx.Data(nil, 5).Action, ActionAccept)
}
