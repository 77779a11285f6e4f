package proxy

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestTransactionLineMessageIDQueueID: the transaction line carries the
// message's Message-ID and the upstream's queue id, whether a policy
// parsed the message or not, so it can be matched with the upstream's
// log (Postfix message-id=, queued as).
func TestTransactionLineMessageIDQueueID(t *testing.T) {
	msg := "From: a@example.org\r\nTo: b@example.net\r\nMessage-ID:\r\n <folded.id@example.org>\r\nSubject: hi\r\n\r\nHello.\r\n"
	for name, eng := range map[string]Engine{
		"no policy": nil,
		"policy":    loadEngine(t, "rules:\n  - name: r\n    when: 'Subject == \"x\"'\n    action: reject\n", "tempfail"),
	} {
		t.Run(name, func(t *testing.T) {
			up := newFakeUpstream(t)
			addr, _, lg := startServer(t, testConfig(t, up.url()), eng)
			c := dialClient(t, addr)
			c.cmd("EHLO client.test", "250")
			c.sendMail("a@example.org", []string{"b@example.net"}, stuff(msg))
			c.cmd("QUIT", "221")
			waitFor(t, "transaction log line", func() bool { return strings.Contains(lg.String(), `"msg":"transaction"`) })
			var line map[string]any
			for _, l := range strings.Split(lg.String(), "\n") {
				if strings.Contains(l, `"msg":"transaction"`) {
					if err := json.Unmarshal([]byte(l), &line); err != nil {
						t.Fatal(err)
					}
					t.Logf("%s", l)
				}
			}
			if line["message_id"] != "<folded.id@example.org>" || line["queue_id"] != "FAKE" {
				t.Errorf("message_id %v, queue_id %v", line["message_id"], line["queue_id"])
			}
		})
	}
}

func TestHeaderMessageID(t *testing.T) {
	for in, want := range map[string]string{
		"Message-ID: <a@b>\r\n\r\nbody":               "<a@b>",
		"message-id:<a@b>\n":                          "<a@b>",
		"Subject: x\r\n\r\nMessage-ID: <body@x>\r\n":  "",
		"X: 1\r\nMessage-Id :\r\n\t<f@x>\r\nY: 2\r\n": "<f@x>",
		"": "",
	} {
		if got := headerMessageID(strings.NewReader(in)); got != want {
			t.Errorf("headerMessageID(%q) = %q, want %q", in, got, want)
		}
	}
}
