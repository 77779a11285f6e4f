package facts

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testKey is a signing key in the forms python3-dkim and mailgate read,
// with its DNS record.
type testKey struct {
	file   string // PEM (RSA) or base64 seed (Ed25519) for pydkim.py
	pem    string // PKCS#8 PEM for SignDKIM
	record string // the TXT record value
	alg    string
}

func newTestKey(t testing.TB, ed bool) testKey {
	t.Helper()
	dir := t.TempDir()
	var k testKey
	var priv any
	if ed {
		pub, p, _ := ed25519.GenerateKey(rand.Reader)
		priv = p
		k.alg = "ed25519-sha256"
		k.record = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
		k.file = filepath.Join(dir, "ed.key")
		os.WriteFile(k.file, []byte(base64.StdEncoding.EncodeToString(p.Seed())), 0o600)
	} else {
		p, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		priv = p
		der, _ := x509.MarshalPKIXPublicKey(&p.PublicKey)
		k.alg = "rsa-sha256"
		k.record = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
		k.file = filepath.Join(dir, "rsa.key")
		os.WriteFile(k.file, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(p)}), 0o600)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k.pem = filepath.Join(dir, "pkcs8.pem")
	os.WriteFile(k.pem, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	return k
}

// pydkim runs testdata/pydkim.py (python3-dkim, the second implementation).
func pydkim(t testing.TB, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	py := pythonWithDKIM(t)
	cmd := exec.Command(py, append([]string{"testdata/pydkim.py"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && stderr.Len() > 0 && !strings.Contains(stderr.String(), "SystemExit") {
		t.Logf("pydkim %s: %s", args[0], stderr.String())
	}
	return out, err
}

// pythonWithDKIM finds a python3 that imports dkim: Debian's, which the
// python3-dkim package installs into, before any other on PATH.
func pythonWithDKIM(t testing.TB) string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import dkim").Run() == nil {
			return py
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("python3-dkim not installed: .ci/run installs it")
	}
	t.Skip("python3-dkim not installed (apt-get install python3-dkim)")
	return ""
}

// dnsJSON writes the TXT records for pydkim.py's verify commands.
func dnsJSON(t testing.TB, recs map[string]string) string {
	p := filepath.Join(t.TempDir(), "dns.json")
	b, _ := json.Marshal(recs)
	os.WriteFile(p, b, 0o600)
	return p
}

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

const testMsg = `From: Alice <alice@example.org>
To: bob@example.net
Subject: hello
Date: Mon, 07 Dec 2026 01:00:00 +0000
Message-ID: <1@example.org>

Hello Bob,  
this is the body.


`
