package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// PyDKIM runs facts/testdata/pydkim.py with Debian's python3-dkim, the
// second DKIM/ARC implementation.
func PyDKIM(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import dkim, authres").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		Missing(t, "python3-dkim and python3-authres are not installed")
	}
	cmd := exec.Command(py, append([]string{filepath.Join(RepoRoot(t), "facts/testdata/pydkim.py")}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydkim %s: %v\n%s", args[0], err, stderr.String())
	}
	return out
}

// DKIMKey writes a PKCS#1 key for pydkim.py and returns its DKIM record.
func DKIMKey(t testing.TB) (file, record string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "k.pem")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return file, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
}
