// Package quarantine is the store of held messages in quarantine_dir: each
// message once as <sha256>.eml, each quarantine event as its own record
// <sha256>.<unix-nanoseconds>.json (docs/DESIGN.md "Quarantine"). The
// front-ends write it; `mailgate quarantine` reads it.
package quarantine

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mailgate/internal/fsync"
	"os"
	"path/filepath"
	"time"
)

// Record is the JSON record of one quarantine event.
type Record struct {
	Time     time.Time `json:"time"`
	Session  string    `json:"session"`
	ClientIP string    `json:"client_ip"`
	HELO     string    `json:"helo"`
	From     string    `json:"from"`
	Rcpts    []string  `json:"rcpts"`
	Rule     string    `json:"rule"`
	Rules    []string  `json:"rules"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
}

// Save stores the message once as DIR/<sha256>.eml (kept as it is
// when a quarantine event already stored it) and this event's record as
// DIR/<sha256>.<unix-nanoseconds>.json, a new file that never replaces
// another event's (docs/DESIGN.md, "Quarantine"). Both are 0600 and
// fsynced (with the directory) before it returns: only then may the client
// get 250 (DESIGN invariant 1). Names come from the hash and the clock
// only, never from anything in the message.
func Save(dir string, msg io.Reader, sum string, rec Record) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	rec.SHA256 = sum
	eml := filepath.Join(dir, sum+".eml")
	if fi, err := os.Lstat(eml); err != nil || !fi.Mode().IsRegular() {
		// The name is the content's hash: an existing file holds these
		// very bytes, written by writeSynced (complete, or not there).
		if err := writeSynced(eml, msg); err != nil {
			return err
		}
	}
	js, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	tmp, err := writeTemp(filepath.Join(dir, sum+".json"), bytes.NewReader(append(js, '\n')))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// A link fails where a rename would replace: two events in the same
	// nanosecond get the next free one.
	ns := rec.Time.UnixNano()
	for i := 0; ; i++ {
		err = os.Link(tmp, filepath.Join(dir, fmt.Sprintf("%s.%d.json", sum, ns+int64(i))))
		if err == nil || !errors.Is(err, fs.ErrExist) || i == 1000 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	if err := fsync.Dir(dir); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	return nil
}

// writeSynced writes a file atomically: a temp file in the same directory,
// fsync, rename.
func writeSynced(path string, r io.Reader) error {
	tmp, err := writeTemp(path, r)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("quarantine: %w", err)
	}
	return nil
}

// writeTemp writes r to a new 0600 file beside path, fsynced, and returns
// its name.
func writeTemp(path string, r io.Reader) (string, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("quarantine: %w", err)
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("quarantine: %w", err)
	}
	return tmp, nil
}
