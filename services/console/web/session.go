package web

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// session is what the console keeps for a signed-in operator, in an encrypted cookie: the bearer token
// it verifies on every request exactly as the APIs do (so a session never outlives its token), and the
// CSRF token its forms carry.
type session struct {
	Token   string    `json:"t"`
	CSRF    string    `json:"c"`
	Expires time.Time `json:"e"`
	// OIDC login in progress: the PKCE verifier, state and where to return.
	Verifier string `json:"v,omitempty"`
	State    string `json:"s,omitempty"`
	Return   string `json:"r,omitempty"`
}

const cookieName = "orders_console"

// sessions seals sessions into cookies with AES-256-GCM (confidential and tamper-proof; the key never
// leaves the process or its key file).
type sessions struct {
	aead   cipher.AEAD
	secure bool // Secure cookies (HTTPS); off only for plain-HTTP development
}

func newSessions(key []byte, secure bool) (*sessions, error) {
	if len(key) != 32 {
		return nil, errors.New("the session key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sessions{aead: aead, secure: secure}, nil
}

func (s *sessions) read(r *http.Request) (session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return session{}, false
	}
	nonce, sealed := raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():]
	plain, err := s.aead.Open(nil, nonce, sealed, []byte(cookieName))
	if err != nil {
		return session{}, false
	}
	var sess session
	if json.Unmarshal(plain, &sess) != nil || time.Now().After(sess.Expires) {
		return session{}, false
	}
	return sess, true
}

func (s *sessions) write(w http.ResponseWriter, sess session) error {
	plain, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	value := base64.RawURLEncoding.EncodeToString(append(nonce, s.aead.Seal(nil, nonce, plain, []byte(cookieName))...))
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: "/", Expires: sess.Expires, HttpOnly: true,
		Secure: s.secure, SameSite: http.SameSiteLaxMode})
	return nil
}

func (s *sessions) clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteLaxMode})
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
