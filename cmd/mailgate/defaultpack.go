package main

import "mailgate/rules"

// loadDefaultPack loads the embedded policies/default.yaml.
// PLACEHOLDER until package mailgate/policies embeds the packs.
func loadDefaultPack(cfg rules.Config) (*rules.Set, error) {
	return nil, usageError{"no embedded default pack yet: give -p POLICY"}
}
