package rules

import (
	"gopkg.in/yaml.v3"
)

// The YAML shape of a policy file. It is decoded with KnownFields(true);
// custom unmarshalers sit only on leaf types, which keep the node's position
// (docs/DEVELOPING.md §3.8: an UnmarshalYAML on a struct that calls node.Decode would lose
// KnownFields for the subtree).

type policyYAML struct {
	Rules []ruleYAML `yaml:"rules"`
	Tests []testYAML `yaml:"tests"`
}

type ruleYAML struct {
	Name          scalar        `yaml:"name"`
	Description   scalar        `yaml:"description"`
	Stage         scalar        `yaml:"stage"`
	When          scalar        `yaml:"when"`
	Action        scalar        `yaml:"action"`
	Reply         scalar        `yaml:"reply"`
	Strip         scalar        `yaml:"strip"`
	Headers       *headersYAML  `yaml:"headers"`
	SubjectPrefix scalar        `yaml:"subject_prefix"`
	Recipients    *rcptsYAML    `yaml:"recipients"`
	Score         scalar        `yaml:"score"`
	Tags          []scalar      `yaml:"tags"`
	Mode          scalar        `yaml:"mode"`
	Greylist      *greylistYAML `yaml:"greylist"`
}

type headersYAML struct {
	Add    nodeMap  `yaml:"add"`
	Set    nodeMap  `yaml:"set"`
	Remove []scalar `yaml:"remove"`
}

type rcptsYAML struct {
	Add    []scalar `yaml:"add"`
	Remove []scalar `yaml:"remove"`
}

type greylistYAML struct {
	Delay scalar `yaml:"delay"`
}

type testYAML struct {
	Name     scalar      `yaml:"name"`
	Message  scalar      `yaml:"message"`
	Envelope *tenvYAML   `yaml:"envelope"`
	Facts    *factsYAML  `yaml:"facts"`
	Expect   *expectYAML `yaml:"expect"`
}

// factsYAML gives a test the facts that servers or the dialogue would
// compute (shared contract: docs/DESIGN.md "Wave 2 contract", `facts:`),
// so packs test without DNS, clamd or Redis.
type factsYAML struct {
	Client *clientFactsYAML    `yaml:"client"`
	Auth   *authFactsYAML      `yaml:"auth"`
	DNSBL  map[string][]scalar `yaml:"dnsbl"` // NAME → answers
	Virus  *virusFactsYAML     `yaml:"virus"`
	// Defects are the defects a front-end adds to the message's own
	// (limit-virus-scan-size: too large to be sent to clamd).
	Defects []scalar `yaml:"defects"`
}

// virusFactsYAML is clamd's verdict, as Virus.Found, .Names, .Error.
type virusFactsYAML struct {
	Found scalar   `yaml:"found"`
	Names []scalar `yaml:"names"`
	Error scalar   `yaml:"error"`
}

type clientFactsYAML struct {
	Pregreet scalar `yaml:"pregreet"`
	PTR      scalar `yaml:"ptr"`
	FCrDNS   scalar `yaml:"fcrdns"`
}

type authFactsYAML struct {
	SPF         scalar         `yaml:"spf"`
	DKIM        []dkimFactYAML `yaml:"dkim"`
	DMARC       scalar         `yaml:"dmarc"`
	DMARCPolicy scalar         `yaml:"dmarc_policy"`
	ARC         scalar         `yaml:"arc"`
}

type dkimFactYAML struct {
	Domain   scalar `yaml:"domain"`
	Selector scalar `yaml:"selector"`
	Result   scalar `yaml:"result"`
	Aligned  scalar `yaml:"aligned"`
}

type tenvYAML struct {
	From     scalar   `yaml:"from"`
	Rcpt     []scalar `yaml:"rcpt"`
	ClientIP scalar   `yaml:"client_ip"`
	Helo     scalar   `yaml:"helo"`
}

type expectYAML struct {
	Verdict  scalar   `yaml:"verdict"`
	Rules    []scalar `yaml:"rules"`
	Stripped []scalar `yaml:"stripped"`
	Headers  nodeMap  `yaml:"headers"`
	Score    scalar   `yaml:"score"`
	Tags     []scalar `yaml:"tags"`
}

// scalar is a leaf value with its position. A non-scalar node is kept too
// (Kind says which), so the loader can report "expected a string" at the
// right place instead of yaml.v3's position-less message.
type scalar struct {
	Value  string
	Line   int // 1-based
	Column int // 1-based, of the node (the quote or block indicator, if any)
	Style  yaml.Style
	Kind   yaml.Kind
	Tag    string
	Set    bool
}

func (s *scalar) UnmarshalYAML(n *yaml.Node) error {
	*s = scalar{Value: n.Value, Line: n.Line, Column: n.Column, Style: n.Style, Kind: n.Kind, Tag: n.ShortTag(), Set: true}
	if n.Kind == yaml.AliasNode && n.Alias != nil && n.Alias.Kind == yaml.ScalarNode {
		s.Value, s.Kind, s.Style, s.Tag = n.Alias.Value, yaml.ScalarNode, n.Alias.Style, n.Alias.ShortTag()
	}
	return nil
}

// nodeMap is a YAML mapping whose keys keep their positions.
type nodeMap struct {
	Node *yaml.Node
}

func (m *nodeMap) UnmarshalYAML(n *yaml.Node) error {
	m.Node = n
	return nil
}

// pairs returns the key/value scalars of the mapping; ok is false (with the
// offending node) when it is not a mapping of scalars.
func (m *nodeMap) pairs() (out [][2]scalar, bad *yaml.Node) {
	if m.Node == nil {
		return nil, nil
	}
	if m.Node.Kind != yaml.MappingNode {
		return nil, m.Node
	}
	for i := 0; i+1 < len(m.Node.Content); i += 2 {
		var k, v scalar
		_ = k.UnmarshalYAML(m.Node.Content[i])
		_ = v.UnmarshalYAML(m.Node.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return out, m.Node.Content[i]
		}
		if v.Kind != yaml.ScalarNode {
			return out, m.Node.Content[i+1]
		}
		out = append(out, [2]scalar{k, v})
	}
	return out, nil
}
