package config

import (
	"fmt"
	"io/fs"

	"mailgate/mimeparse"

	"mailgate/rules"
)

// RunsNoPolicy reports whether c runs no policy at all: `policies: []`
// in the file (absent `policies:` means the embedded default pack).
func (c *Config) RunsNoPolicy() bool { return len(c.Policies) == 0 && c.EmbeddedPolicy == "" }

// RulesConfig is the policy set c names, as rules.Load takes it, and the
// file system its policies are read from: defaults for the embedded pack,
// nil for files on disk. Paths in c are already resolved (Parse), so
// BaseDir stays empty: joining the config's directory a second time would
// read sub/sub/local.yaml for `-c sub/mailgate.yaml`.
func (c *Config) RulesConfig(defaults fs.FS) (rules.Config, fs.FS) {
	rc := rules.Config{Policies: c.Policies, Lists: c.Lists, RuleError: c.RuleError, Bounds: c.Bounds(), Facts: c.FactSources()}
	if len(c.Policies) == 0 && c.EmbeddedPolicy != "" && defaults != nil {
		rc.Policies = []string{c.EmbeddedPolicy}
		return rc, defaults
	}
	return rc, nil
}

// LoadPolicies compiles the policy set c names; every command that takes
// a config file (serve, check -c, lint -c, test -c) loads it through here,
// so all of them run the same rules. With `policies: []` the set is empty.
func LoadPolicies(c *Config, defaults fs.FS, st rules.Store) (*rules.Set, error) {
	rc, fsys := c.RulesConfig(defaults)
	var set *rules.Set
	var err error
	if fsys != nil {
		set, err = rules.LoadFS(fsys, rc, st)
	} else {
		set, err = rules.Load(rc, st)
	}
	if err != nil {
		return nil, err
	}
	if err := c.CheckFacts(set); err != nil {
		return nil, err
	}
	return set, nil
}

// CheckFacts refuses a policy set that reads a fact no configured section
// feeds (docs/DESIGN.md "Wave 2 contract": without the section, serve,
// check -c and lint -c refuse it; lint -p and test -p accept it).
func (c *Config) CheckFacts(set *rules.Set) error {
	if set.Uses("Virus") && c.Clamd == nil {
		where := c.File
		if where == "" {
			where = "configuration"
		}
		return &Error{Problems: []string{fmt.Sprintf("%s: a policy reads Virus (clamd's verdict), but no clamd: section is configured (clamd: {address: tcp://127.0.0.1:3310})", where)}}
	}
	return nil
}

// Bounds are the fact sizes c's limits allow, for the policies' cost
// estimate (docs/policy.md "Cost of a rule"): serve, lint -c, check -c and
// test -c estimate with the same limits.
func (c *Config) Bounds() rules.Bounds {
	l := c.Limits
	return rules.Bounds{
		MimeParts: int64(l.MimeParts), ArchiveEntries: int64(l.ArchiveEntries), HeaderBytes: l.HeaderBytes,
		MessageSize: l.MessageSize, Recipients: int64(l.Recipients),
	}
}

// MimeLimits are the parser's limits from c (limits.*): what serve parses
// with, and what check -c parses with, so a back-test sees the same
// limit-* defects.
func (c *Config) MimeLimits() mimeparse.Limits {
	l := mimeparse.DefaultLimits()
	lc := c.Limits
	l.MimeDepth, l.MimeParts, l.HeaderBytes, l.LineLength = lc.MimeDepth, lc.MimeParts, int(lc.HeaderBytes), int(lc.LineLength)
	l.ArchiveDepth, l.ArchiveEntries, l.InspectSpill = lc.ArchiveDepth, lc.ArchiveEntries, lc.InspectSpill
	l.DecompressedBytes, l.ArchiveDict = lc.DecompressedBytes, lc.ArchiveDict
	l.SpillDir = c.SpoolDir
	return l
}
