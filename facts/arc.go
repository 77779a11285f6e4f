package facts

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ARC chain validation (RFC 8617 §5.2), on the DKIM pieces of canon.go:
// the newest ARC-Message-Signature must verify over the header and body,
// and every ARC-Seal over the ARC sets up to its own.

const maxARCInstances = 50 // RFC 8617 §4.2.1

// arcSet is one instance's three fields.
type arcSet struct {
	aar, ams, as *headerField
}

// arcChain collects the ARC sets of a header; ok is false when the chain
// is structurally broken (a missing or duplicated field, a gap, a bad i=).
func arcChain(fields []headerField) (sets []arcSet, present, ok bool) {
	byInst := map[int]*arcSet{}
	max := 0
	for i := range fields {
		f := &fields[i]
		var slot func(*arcSet) **headerField
		switch strings.ToLower(f.name) {
		case "arc-authentication-results":
			slot = func(s *arcSet) **headerField { return &s.aar }
		case "arc-message-signature":
			slot = func(s *arcSet) **headerField { return &s.ams }
		case "arc-seal":
			slot = func(s *arcSet) **headerField { return &s.as }
		default:
			continue
		}
		present = true
		inst, err := arcInstance(f.value())
		if err != nil || inst < 1 || inst > maxARCInstances {
			return nil, true, false
		}
		s := byInst[inst]
		if s == nil {
			s = &arcSet{}
			byInst[inst] = s
		}
		p := slot(s)
		if *p != nil {
			return nil, true, false
		}
		*p = f
		max = maxInt(max, inst)
	}
	if !present {
		return nil, false, true
	}
	for i := 1; i <= max; i++ {
		s := byInst[i]
		if s == nil || s.aar == nil || s.ams == nil || s.as == nil {
			return nil, true, false
		}
		sets = append(sets, *s)
	}
	return sets, true, true
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// arcInstance reads i= (the first tag of an AAR value, a tag of the others).
func arcInstance(v string) (int, error) {
	for _, part := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(part, "=")
		if ok && strings.TrimSpace(k) == "i" {
			return strconv.Atoi(strings.TrimSpace(val))
		}
	}
	return 0, errors.New("no i= tag")
}

// verifyARC validates the chain: "none" without ARC fields, "pass" or
// "fail". bodyHash is the body hash computed with the newest AMS's body
// canonicalization (nil when it could not be computed).
func verifyARC(ctx context.Context, r *Resolver, fields []headerField, sets []arcSet, bodyHash []byte) (string, error) {
	n := len(sets)
	// The newest seal's cv= says what the previous hop found (§5.2 step 2).
	for i, s := range sets {
		cv := tagList(s.as.value())["cv"]
		switch {
		case i == 0 && cv != "none", i > 0 && cv != "pass":
			return "fail", fmt.Errorf("arc: instance %d has cv=%s", i+1, cv)
		}
	}
	newest := sets[n-1]
	if err := verifyAMS(ctx, r, fields, newest.ams, bodyHash); err != nil {
		return "fail", err
	}
	for i := n; i >= 1; i-- {
		if err := verifySeal(ctx, r, sets[:i]); err != nil {
			return "fail", err
		}
	}
	return "pass", nil
}

// verifyAMS checks the newest ARC-Message-Signature as a DKIM signature
// (RFC 8617 §4.1.2: the DKIM algorithm, with i= instead of v=).
func verifyAMS(ctx context.Context, r *Resolver, fields []headerField, ams *headerField, bodyHash []byte) error {
	tags := tagList(ams.value())
	bh, err := base64.StdEncoding.DecodeString(tags["bh"])
	if err != nil || bodyHash == nil || string(bh) != string(bodyHash) {
		return errors.New("arc: ARC-Message-Signature body hash does not match")
	}
	hc, _ := canonModes(tags["c"])
	h := sha256.New()
	used := map[string]int{}
	for _, name := range strings.Split(tags["h"], ":") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		// Like DKIM: repeated names take the fields from the bottom up.
		seen := 0
		for i := len(fields) - 1; i >= 0; i-- {
			if strings.ToLower(fields[i].name) != name {
				continue
			}
			if seen == used[name] {
				h.Write([]byte(canonHeader(fields[i].raw, hc)))
				break
			}
			seen++
		}
		used[name]++
	}
	h.Write([]byte(trimCRLF(canonHeader(withoutB(ams.raw), hc))))
	return checkSig(ctx, r, tags, h.Sum(nil))
}

// verifySeal checks the ARC-Seal of the last set over every set up to it
// (relaxed, RFC 8617 §5.1.1).
func verifySeal(ctx context.Context, r *Resolver, sets []arcSet) error {
	h := sha256.New()
	for i, s := range sets {
		h.Write([]byte(relaxedHeader(s.aar.raw)))
		h.Write([]byte(relaxedHeader(s.ams.raw)))
		if i < len(sets)-1 {
			h.Write([]byte(relaxedHeader(s.as.raw)))
		} else {
			h.Write([]byte(trimCRLF(relaxedHeader(withoutB(s.as.raw)))))
		}
	}
	return checkSig(ctx, r, tagList(sets[len(sets)-1].as.value()), h.Sum(nil))
}

// canonModes reads c= ("relaxed/simple"); simple is the default of each.
func canonModes(c string) (headerRelaxed, bodyRelaxed bool) {
	hs, bs, _ := strings.Cut(strings.ToLower(c), "/")
	return hs == "relaxed", bs == "relaxed"
}

// checkSig verifies b= over the hash with the key at s._domainkey.d.
func checkSig(ctx context.Context, r *Resolver, tags map[string]string, sum []byte) error {
	sig, err := base64.StdEncoding.DecodeString(tags["b"])
	if err != nil {
		return errors.New("arc: bad b=")
	}
	pub, err := lookupKey(ctx, r, tags["s"], tags["d"])
	if err != nil {
		return err
	}
	switch strings.ToLower(tags["a"]) {
	case "rsa-sha256":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("arc: key is not RSA")
		}
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, sum, sig); err != nil {
			return fmt.Errorf("arc: signature of %s does not verify", tags["d"])
		}
	case "ed25519-sha256":
		k, ok := pub.(ed25519.PublicKey)
		if !ok || !ed25519.Verify(k, sum, sig) {
			return fmt.Errorf("arc: signature of %s does not verify", tags["d"])
		}
	default:
		return fmt.Errorf("arc: algorithm %q not supported", tags["a"])
	}
	return nil
}

// lookupKey fetches and parses a DKIM key record (RFC 6376 §3.6.1).
func lookupKey(ctx context.Context, r *Resolver, selector, domain string) (crypto.PublicKey, error) {
	if selector == "" || domain == "" {
		return nil, errors.New("arc: no s= or d=")
	}
	txts, err := r.LookupTXT(ctx, selector+"._domainkey."+domain)
	if err != nil {
		return nil, fmt.Errorf("arc: key %s._domainkey.%s: %w", selector, domain, err)
	}
	for _, t := range txts {
		tags := tagList(t)
		p, err := base64.StdEncoding.DecodeString(tags["p"])
		if err != nil || len(p) == 0 {
			continue
		}
		switch strings.ToLower(tags["k"]) {
		case "ed25519":
			if len(p) == ed25519.PublicKeySize {
				return ed25519.PublicKey(p), nil
			}
		case "", "rsa":
			if k, err := x509.ParsePKIXPublicKey(p); err == nil {
				return k, nil
			}
			if k, err := x509.ParsePKCS1PublicKey(p); err == nil {
				return k, nil
			}
		}
	}
	return nil, fmt.Errorf("arc: no usable key at %s._domainkey.%s", selector, domain)
}
