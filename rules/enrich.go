package rules

// Enrichers runs several Enrichers in order (DNS lookups, clamd): the
// front-end installs one Enricher per connection with Conn.SetEnricher.
type Enrichers []Enricher

// Enrich runs each Enricher of es for the stage.
func (es Enrichers) Enrich(stage Stage, f *Facts) {
	for _, e := range es {
		if e != nil {
			e.Enrich(stage, f)
		}
	}
}

// StaticFacts is the Enricher of check and the policy tests: the facts a
// lookup would compute, given (the tests' facts: key; check --offline
// gives none). Each appears from its stage on, as the live lookups give
// it: the client's lookups from connect, Auth.SPF from mail, the rest at
// data, where Virus is set and Defects (the defects a front-end adds,
// such as limit-virus-scan-size) join the message's. Auth results left
// "" read as none.
type StaticFacts struct {
	PTR     string
	FCrDNS  bool
	DNSBL   map[string][]string // NAME → answers; a name absent is not listed
	Auth    Auth
	Virus   Virus
	Defects []string
}

// Enrich fills in the given facts known at stage.
func (s *StaticFacts) Enrich(stage Stage, f *Facts) {
	f.Client.PTR, f.Client.FCrDNS = s.PTR, s.FCrDNS
	f.DNSBL = s.DNSBL
	f.Client.Blocklisted = Blocklisted(s.DNSBL)
	if stage < StageMail {
		return
	}
	f.Auth.SPF = orNone(s.Auth.SPF)
	if stage != StageData {
		return
	}
	f.Auth.DKIM = s.Auth.DKIM
	f.Auth.DMARC = orNone(s.Auth.DMARC)
	f.Auth.DMARCPolicy = s.Auth.DMARCPolicy
	f.Auth.ARC = orNone(s.Auth.ARC)
	f.Virus = s.Virus
	if f.Msg != nil {
		for _, d := range s.Defects {
			if !contains(f.Msg.Defects, d) {
				f.Msg.Defects = append(f.Msg.Defects, d)
			}
		}
	}
}
