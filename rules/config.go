package rules

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// Config says which policies and lists to load.
type Config struct {
	Policies  []string          // policy files, evaluated in this order
	Lists     map[string]string // list name → file (one entry a line, '#' comments)
	RuleError string            // what a rule's runtime error does: "tempfail" (default) | "continue"
	BaseDir   string            // relative policy/list paths resolve from here ("" = cwd)
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

// ConfigFromYAML reads the rules part of a mailgate.yaml file: the keys
// policies, lists and rule_error. Every other top-level key is left to the
// proxy's full config parser (which also rejects unknown keys); this reader
// exists so that `mailgate lint -c` needs no import of proxy. BaseDir is the
// config file's directory, as DESIGN.md says for relative paths.
func ConfigFromYAML(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{BaseDir: filepath.Dir(path)}
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		return cfg, &LoadError{Problems: []Problem{yamlProblem(path, data, err)}}
	}
	var le LoadError
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return cfg, nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		le.add(path, top.Line, top.Column, "config: expected a mapping")
		return cfg, &le
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "policies":
			if v.Kind != yaml.SequenceNode {
				le.add(path, v.Line, v.Column, "policies: expected a list of files")
				continue
			}
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode || e.Value == "" {
					le.add(path, e.Line, e.Column, "policies: expected a file name")
					continue
				}
				cfg.Policies = append(cfg.Policies, e.Value)
			}
		case "lists":
			if v.Kind != yaml.MappingNode {
				le.add(path, v.Line, v.Column, "lists: expected a mapping of list name to file")
				continue
			}
			cfg.Lists = map[string]string{}
			for j := 0; j+1 < len(v.Content); j += 2 {
				lk, lv := v.Content[j], v.Content[j+1]
				if lv.Kind != yaml.ScalarNode || lv.Value == "" {
					le.add(path, lv.Line, lv.Column, fmt.Sprintf("lists: %s: expected a file name", lk.Value))
					continue
				}
				if !validListName(lk.Value) {
					le.add(path, lk.Line, lk.Column, fmt.Sprintf("lists: %q is not a valid list name (letters, digits and _, not starting with a digit)", lk.Value))
					continue
				}
				cfg.Lists[lk.Value] = lv.Value
			}
		case "rule_error":
			if v.Kind != yaml.ScalarNode || (v.Value != RuleErrorTempfail && v.Value != RuleErrorContinue) {
				le.add(path, v.Line, v.Column, fmt.Sprintf("rule_error: %q is not one of tempfail, continue", v.Value))
				continue
			}
			cfg.RuleError = v.Value
		}
	}
	if len(le.Problems) > 0 {
		return cfg, &le
	}
	return cfg, nil
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
