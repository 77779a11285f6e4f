package facts

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"mailgate/rules"
)

// Signer re-signs, with the local domain's key, the mail of that domain
// that mailgate rewrote (config dkim_sign; docs/policy.md "DKIM
// re-signing"). Safe for concurrent use.
type Signer struct {
	Domain   string
	Selector string
	key      crypto.Signer
}

// signedHeaders are the fields a re-signature covers: those a reader sees
// and the MIME structure, not the trace fields relays add.
var signedHeaders = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
}

// LoadSigner reads a PEM private key: RSA (PKCS#1 or PKCS#8) or Ed25519
// (PKCS#8).
func LoadSigner(domain, selector, keyFile string) (*Signer, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", keyFile)
	}
	var key any
	switch blk.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v", keyFile, err)
	}
	var s crypto.Signer
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("%s: RSA key of %d bits is too short (RFC 8301: at least 1024)", keyFile, k.N.BitLen())
		}
		s = k
	case ed25519.PrivateKey:
		s = k
	default:
		return nil, fmt.Errorf("%s: %T is not an RSA or Ed25519 key", keyFile, key)
	}
	return &Signer{Domain: strings.ToLower(domain), Selector: selector, key: s}, nil
}

// PublicRecord is the TXT record to publish at SELECTOR._domainkey.DOMAIN.
func (s *Signer) PublicRecord() string {
	switch k := s.key.Public().(type) {
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k)
	default:
		der, _ := x509.MarshalPKIXPublicKey(k)
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	}
}

// ErrNotOurs: the From domain is not the signing domain; signing such
// mail would let its sender replay our signature.
var ErrNotOurs = errors.New("dkim_sign: From domain is not the signing domain")

// Sign returns the DKIM-Signature field (with its CRLF) to put in front of
// msg, the message as delivered (CRLF line ends). fromDomain is the domain
// of its From address: anything but the signing domain is refused with
// ErrNotOurs. The caller signs only messages it modified.
func (s *Signer) Sign(msg io.Reader, fromDomain string) (string, error) {
	if !strings.EqualFold(strings.TrimSuffix(fromDomain, "."), s.Domain) {
		return "", ErrNotOurs
	}
	sg, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 s.Domain,
		Selector:               s.Selector,
		Signer:                 s.key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             signedHeaders,
	})
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(sg, msg); err != nil {
		sg.Close()
		return "", err
	}
	if err := sg.Close(); err != nil {
		return "", err
	}
	return sg.Signature(), nil
}

// SignBytes is Sign over a message in memory, returning the signed message.
func (s *Signer) SignBytes(msg []byte, fromDomain string) ([]byte, error) {
	sig, err := s.Sign(bytes.NewReader(msg), fromDomain)
	if err != nil {
		return nil, err
	}
	return append([]byte(sig), msg...), nil
}

// SignDelivered returns the DKIM-Signature field for a delivered message
// when it must be re-signed: mailgate modified it (edits: header changes,
// a subject prefix, stripped parts; adding Authentication-Results alone
// does not count) and its From domain is the signing domain. "" with a
// nil error means: deliver it as it is.
func (s *Signer) SignDelivered(msg io.Reader, fromDomain string, edits *rules.Edits) (string, error) {
	if s == nil || edits == nil || edits.Empty() {
		return "", nil
	}
	sig, err := s.Sign(msg, fromDomain)
	if errors.Is(err, ErrNotOurs) {
		return "", nil
	}
	return sig, err
}

// HeaderFromDomain is the lower-cased domain of a From field's one
// address (the decoded value), "" when it has none or several.
func HeaderFromDomain(v string) string {
	a, err := mail.ParseAddress(strings.TrimSpace(v))
	if err != nil {
		return ""
	}
	return addrDomain(a.Address)
}
