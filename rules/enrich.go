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
// lookup would compute, given. At stage data it sets Virus and adds
// Defects (the defects a front-end adds, such as limit-virus-scan-size) to
// the message's.
type StaticFacts struct {
	Virus   Virus
	Defects []string
}

// Enrich fills in the given facts at stage data.
func (s *StaticFacts) Enrich(stage Stage, f *Facts) {
	if stage != StageData {
		return
	}
	f.Virus = s.Virus
	if f.Msg != nil {
		for _, d := range s.Defects {
			if !contains(f.Msg.Defects, d) {
				f.Msg.Defects = append(f.Msg.Defects, d)
			}
		}
	}
}
