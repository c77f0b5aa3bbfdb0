package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Development mode (AUTH_MODE=dev, what `make up` runs): a signing key of the local stack's own, kept
// under .local/auth, stands in for an identity provider. The services trust its public key (the JWKS
// file beside it) exactly as they trust a real issuer's JWKS in production, and `ordersctl token`
// signs tokens with it. Authentication is never off: a dev token goes through the same checks.
const (
	DevIssuer      = "orders-dev"
	DevAudience    = "orders"
	DevKeyFile     = "dev-signing-key.pem"
	DevJWKSFile    = "jwks.json"
	devKeyPEMLabel = "PRIVATE KEY"
)

// DevKey is the development signing key: ES256 on P-256, named by its RFC 7638 thumbprint.
type DevKey struct {
	Private *ecdsa.PrivateKey
	KeyID   string
	// JWKSPath is the JWKS file with its public key.
	JWKSPath string
}

// EnsureDevKey returns the development key kept in dir, creating it (and dir) on first use. Several
// processes may call it at once (the services start together, ordersctl token may run meanwhile):
// each writes a candidate to a file of its own and links it into place, and link(2) fails when the
// name exists, so exactly one key wins and every caller reads that one. The JWKS file is then written
// by rename, which is atomic, with the same content by everyone.
func EnsureDevKey(dir string) (DevKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return DevKey{}, fmt.Errorf("dev key: %w", err)
	}
	path := filepath.Join(dir, DevKeyFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createDevKey(dir, path); err != nil {
			return DevKey{}, err
		}
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return DevKey{}, fmt.Errorf("dev key: %w", err)
	}
	key, err := parseDevKey(raw)
	if err != nil {
		return DevKey{}, fmt.Errorf("dev key %s: %w", path, err)
	}
	set, err := json.MarshalIndent(key.JWKS(), "", "  ")
	if err != nil {
		return DevKey{}, err
	}
	key.JWKSPath = filepath.Join(dir, DevJWKSFile)
	if cur, err := os.ReadFile(key.JWKSPath); err != nil || string(cur) != string(set)+"\n" {
		if err := writeAtomic(dir, key.JWKSPath, append(set, '\n'), 0o644); err != nil {
			return DevKey{}, fmt.Errorf("dev JWKS: %w", err)
		}
	}
	return key, nil
}

func createDevKey(dir, path string) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("dev key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("dev key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".dev-key-*")
	if err != nil {
		return fmt.Errorf("dev key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: devKeyPEMLabel, Bytes: der}); err != nil {
		tmp.Close()
		return fmt.Errorf("dev key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("dev key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("dev key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("dev key: %w", err)
	}
	return nil // ours, or another process's that linked first: the caller reads whichever is there
}

func parseDevKey(raw []byte) (DevKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != devKeyPEMLabel {
		return DevKey{}, errors.New("not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return DevKey{}, err
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return DevKey{}, errors.New("not a P-256 key")
	}
	jwk := jose.JSONWebKey{Key: &priv.PublicKey}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return DevKey{}, err
	}
	return DevKey{Private: priv, KeyID: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

func (k DevKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.KeyID, Algorithm: string(jose.ES256), Use: "sig"}
}

// JWKS is the key set that verifies this key's tokens.
func (k DevKey) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}}
}

func writeAtomic(dir, path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// TokenRequest is what a token says.
type TokenRequest struct {
	Issuer, Audience string
	Subject          string
	Role             Role
	CustomerID       string
	TTL              time.Duration
	Now              time.Time // time.Now when zero
}

// Sign issues a JWT for req, signed with key under kid with alg (ES256 for the dev key).
func Sign(key crypto.Signer, kid string, alg jose.SignatureAlgorithm, req TokenRequest) (string, error) {
	if req.Subject == "" {
		return "", errors.New("a token needs a subject")
	}
	if _, err := ParseRole(string(req.Role)); err != nil {
		return "", err
	}
	if req.Role == Customer && req.CustomerID == "" {
		return "", errors.New("a customer token needs a customer id")
	}
	if req.TTL <= 0 {
		return "", errors.New("a token needs a positive lifetime")
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	claims := tokenClaims{Claims: jwt.Claims{Issuer: req.Issuer, Subject: req.Subject, Audience: jwt.Audience{req.Audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(req.TTL))},
		Role: string(req.Role)}
	if req.Role == Customer {
		claims.CustomerID = req.CustomerID
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// Sign issues a token signed with the dev key for the dev issuer and audience unless req names others.
func (k DevKey) Sign(req TokenRequest) (string, error) {
	if req.Issuer == "" {
		req.Issuer = DevIssuer
	}
	if req.Audience == "" {
		req.Audience = DevAudience
	}
	return Sign(k.Private, k.KeyID, jose.ES256, req)
}
