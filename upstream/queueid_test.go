package upstream

import "testing"

func TestQueueID(t *testing.T) {
	for _, c := range []struct {
		rp   Reply
		want string
	}{
		{r(250, 2, 0, 0, "Ok: queued as 4dKq1X3bVHz9vJ"), "4dKq1X3bVHz9vJ"},
		{r(250, 2, 0, 0, "Ok: queued as 87379986461"), "87379986461"},
		{r(250, 0, 0, 0, "OK id=1rAbCd-000AbC-Dd"), "1rAbCd-000AbC-Dd"},
		{r(250, 2, 0, 0, "4B7LmAbc012345 Message accepted for delivery"), "4B7LmAbc012345"},
		{r(250, 2, 0, 0, "Ok: queued as 1796608307.M310P10726Q1_673161f89de2.gate.example"), "1796608307.M310P10726Q1_673161f89de2.gate.example"},
		{r(250, 2, 0, 0, "Ok"), ""},
		{r(451, 4, 3, 0, "queued as X"), ""},
		{r(250, 2, 0, 0, "queued as \x1b[31mX"), ""},
	} {
		if got := QueueID(c.rp); got != c.want {
			t.Errorf("QueueID(%q) = %q, want %q", c.rp.String(), got, c.want)
		}
	}
}
