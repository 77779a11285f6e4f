package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// quarantineRecord is the JSON sidecar of a quarantined message.
type quarantineRecord struct {
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

// quarantine writes the message as DIR/<sha256>.eml and the record as
// DIR/<sha256>.json, both 0600 and fsynced (with the directory) before it
// returns: only then may the client get 250 (DESIGN invariant 1). Names come
// from the hash only, never from anything in the message.
func quarantine(dir string, msg io.Reader, sum string, rec quarantineRecord) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	rec.SHA256 = sum
	if err := writeSynced(filepath.Join(dir, sum+".eml"), msg); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	if err := writeSynced(filepath.Join(dir, sum+".json"), bytes.NewReader(append(js, '\n'))); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	return nil
}

// writeSynced writes a file atomically: a temp file in the same directory,
// fsync, rename.
func writeSynced(path string, r io.Reader) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("quarantine: %w", err)
	}
	return nil
}
