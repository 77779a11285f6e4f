// Package policies holds the shipped policy packs. default.yaml is what
// `mailgate serve` and `mailgate check` apply when no configuration names a
// policy; the others are starting points to copy or to list in
// mailgate.yaml. Each pack carries its own tests (`mailgate test -p FILE`),
// whose fixtures live in ../testdata.
package policies

import "embed"

// FS holds every *.yaml pack of this directory.
//
//go:embed *.yaml
var FS embed.FS

// Default is the name, in FS, of the pack applied without configuration.
const Default = "default.yaml"
