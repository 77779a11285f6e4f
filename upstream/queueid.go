package upstream

import "regexp"

// queueIDRE finds the queue id in an accepting reply to the end of data:
// Postfix "250 2.0.0 Ok: queued as 4XyZ1", Exim "250 OK id=1rAbCd-000Ab-Cd",
// Sendmail "250 2.0.0 4B7LmAbc012345 Message accepted for delivery", and
// the Maildir upstream's "Ok: queued as NAME".
var queueIDRE = regexp.MustCompile(`(?i)(?:queued as |\bid=)([A-Za-z0-9][A-Za-z0-9._:,=-]{0,127})|^([A-Za-z0-9]{8,32}) Message accepted for delivery`)

// QueueID returns the queue id an upstream's 2xx reply to the message
// names, "" when it names none: the id that the upstream's own log uses,
// so that mailgate's transaction line can be matched with it.
func QueueID(rp Reply) string {
	if rp.Code/100 != 2 {
		return ""
	}
	m := queueIDRE.FindStringSubmatch(rp.Text)
	if m == nil {
		return ""
	}
	if m[1] != "" {
		return m[1]
	}
	return m[2]
}
