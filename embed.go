// Package mailgate carries into the binary what the commands need from the
// source tree: the shipped policy packs and the fixtures their tests name,
// so that `mailgate test` without -c or -p tests the embedded default pack
// as `go test` does (README "Commands").
package mailgate

import "embed"

// Tree holds policies/*.yaml with their lists, and the testdata/ messages
// the packs' tests: name, at their paths in the source tree.
//
//go:embed policies/*.yaml policies/lists testdata/attacks testdata/benign testdata/packs
var Tree embed.FS

// DefaultPack is the path, in Tree, of the pack applied without
// configuration (the same file as policies.Default in policies.FS).
const DefaultPack = "policies/default.yaml"
