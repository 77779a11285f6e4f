package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"mailgate/rules"
)

// checkKeys walks the YAML document against the file's schema (the yaml
// tags of t) before it is decoded, and reports every unknown key and every
// value of the wrong shape at its line and column, in the words of the
// file: "limits.message_sise: unknown key (did you mean message_size?)",
// not the decoder's "field message_sise not found in type ...".
func checkKeys(path string, root *yaml.Node, t reflect.Type) []string {
	var probs []string
	at := func(n *yaml.Node, format string, args ...any) {
		probs = append(probs, fmt.Sprintf("%s:%d:%d: %s", path, n.Line, n.Column, fmt.Sprintf(format, args...)))
	}
	var walk func(n *yaml.Node, t reflect.Type, key string)
	walk = func(n *yaml.Node, t reflect.Type, key string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return // key: with no value: the default
		}
		if t == nodeType {
			return // read by its own reader (tests: by rules)
		}
		if reflect.PointerTo(t).Implements(unmarshalerType) {
			return // sizes, durations, lists: their UnmarshalYAML says what is wrong
		}
		switch t.Kind() {
		case reflect.Struct:
			if n.Kind != yaml.MappingNode {
				at(n, "%s: want a mapping of keys (%s), got %s", key, strings.Join(yamlKeys(t), ", "), describe(n))
				return
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				name := join(key, k.Value)
				f, ok := fieldByTag(t, k.Value)
				if !ok {
					at(k, "%s: unknown key%s", name, rules.DidYouMean(k.Value, yamlKeys(t)))
					continue
				}
				walk(v, f.Type, name)
			}
		case reflect.Map:
			if n.Kind != yaml.MappingNode {
				at(n, "%s: want a mapping, got %s", key, describe(n))
				return
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], t.Elem(), join(key, n.Content[i].Value))
			}
		case reflect.Slice:
			if n.Kind != yaml.SequenceNode {
				at(n, "%s: want a list, got %s", key, describe(n))
				return
			}
			for _, c := range n.Content {
				walk(c, t.Elem(), key)
			}
		case reflect.String:
			if n.Kind != yaml.ScalarNode {
				at(n, "%s: want a string, got %s", key, describe(n))
			}
		case reflect.Bool:
			if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
				at(n, "%s: want true or false, got %s", key, describe(n))
			}
		case reflect.Int, reflect.Int64:
			if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
				at(n, "%s: want a whole number, got %s", key, describe(n))
			}
		}
	}
	doc := root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil
		}
		doc = doc.Content[0]
	}
	walk(doc, t, "")
	return probs
}

var (
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	nodeType        = reflect.TypeOf(yaml.Node{})
)

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// yamlKeys lists the keys a struct type takes, in declaration order.
func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if name := tagName(t.Field(i)); name != "" {
			out = append(out, name)
		}
	}
	return out
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); tagName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// describe names a node's shape as the file shows it.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("%q", v)
	}
	return "something else"
}
