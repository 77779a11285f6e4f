package rules

import (
	"fmt"
	"strconv"
	"strings"
)

// Default replies, used when a rule gives none.
var (
	ReplyRejected   = Reply{550, [3]int{5, 7, 1}, "Message rejected by policy"}
	ReplyTempfailed = Reply{451, [3]int{4, 7, 1}, "Temporarily deferred by policy, try again later"}
	ReplyGreylisted = Reply{450, [3]int{4, 7, 1}, "Greylisted, please try again later"}
	ReplyRuleError  = Reply{451, [3]int{4, 3, 0}, "Temporary local problem, try again later"}
	// ReplyStateError: the shared state (Redis) behind rate() or
	// greylisting could not answer.
	ReplyStateError = Reply{451, [3]int{4, 3, 0}, "Temporary local problem (policy state), try again later"}
)

// parseReply parses "550 5.7.1 text" (RFC 5321 §4.2 code, RFC 3463
// enhanced code, one line of text).
func parseReply(s string) (Reply, error) {
	var r Reply
	f := strings.SplitN(s, " ", 3)
	if len(f) < 3 || strings.TrimSpace(f[2]) == "" {
		return r, fmt.Errorf("%q is not a reply such as \"550 5.7.1 Text\" (code, enhanced code, text)", s)
	}
	code, err := strconv.Atoi(f[0])
	if err != nil || len(f[0]) != 3 || code < 200 || code > 599 {
		return r, fmt.Errorf("%q: the code must be three digits from 200 to 599", f[0])
	}
	parts := strings.Split(f[1], ".")
	if len(parts) != 3 {
		return r, fmt.Errorf("%q: an enhanced status code such as 5.7.1 is required (RFC 3463)", f[1])
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || p == "" || len(p) > 3 || n < 0 || (i == 0 && len(p) != 1) {
			return r, fmt.Errorf("%q: an enhanced status code such as 5.7.1 is required (RFC 3463)", f[1])
		}
		r.Enhanced[i] = n
	}
	if r.Enhanced[0] != 2 && r.Enhanced[0] != 4 && r.Enhanced[0] != 5 {
		return r, fmt.Errorf("%q: the enhanced code's class must be 2, 4 or 5", f[1])
	}
	if r.Enhanced[0] != code/100 {
		return r, fmt.Errorf("the enhanced code %s does not match the reply code %d (class %d)", f[1], code, code/100)
	}
	if strings.ContainsAny(f[2], "\r\n") {
		return r, fmt.Errorf("the reply text must be one line")
	}
	r.Code, r.Text = code, f[2]
	return r, nil
}

// replyFits checks a reply against its rule's action: reject needs 5xx,
// tempfail and greylist 4xx, accept/discard/quarantine 2xx.
func replyFits(r Reply, a Action, grey bool) error {
	want := 0
	switch {
	case grey, a == ActionTempfail:
		want = 4
	case a == ActionReject:
		want = 5
	case a == ActionAccept, a == ActionDiscard, a == ActionQuarantine:
		want = 2
	default:
		return fmt.Errorf("only a terminal action (accept, reject, tempfail, discard, quarantine, greylist) has a reply")
	}
	if r.Code/100 != want {
		name := string(a)
		if grey {
			name = "greylist"
		}
		return fmt.Errorf("%s needs a %dxx reply, not %d", name, want, r.Code)
	}
	return nil
}
