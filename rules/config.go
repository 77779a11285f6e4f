package rules

import (
	"path/filepath"
)

// Config says which policies and lists to load.
type Config struct {
	Policies  []string          // policy files, evaluated in this order
	Lists     map[string]string // list name → file (one entry a line, '#' comments)
	RuleError string            // what a rule's runtime error does: "tempfail" (default) | "continue"
	BaseDir   string            // relative policy/list paths resolve from here ("" = cwd)
	Facts     FactSources       // which lookup facts the configuration feeds (facts.go)
	Bounds    Bounds            // fact sizes for the cost estimate (cost.go); zero fields: the defaults
}

// Values of Config.RuleError.
const (
	RuleErrorTempfail = "tempfail"
	RuleErrorContinue = "continue"
)

func (c *Config) path(p string) string {
	if c.BaseDir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.BaseDir, p)
}

func validListName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
