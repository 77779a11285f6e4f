// Package fsync makes file-system changes durable: what the quarantine
// store and the Maildir delivery do before mailgate answers 250
// (docs/DESIGN.md invariant 1).
package fsync

import "os"

// Dir fsyncs a directory, so that a create, link or rename in it is
// durable.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
