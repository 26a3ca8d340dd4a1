package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

const scramSHA256 = "SCRAM-SHA-256"

// scramClient is the client side of SCRAM-SHA-256 (RFC 5802/7677) without
// channel binding, as PostgreSQL uses it. The password is the access token.
type scramClient struct {
	password        string
	clientNonce     string
	clientFirstBare string
	authMessage     []byte
	saltedPassword  []byte
}

func newSCRAMClient(password string) (*scramClient, error) {
	nonce := make([]byte, 18)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	c := &scramClient{password: password, clientNonce: base64.RawStdEncoding.EncodeToString(nonce)}
	// PostgreSQL takes the user name from the startup message, so n= is empty.
	c.clientFirstBare = "n=,r=" + c.clientNonce
	return c, nil
}

func (c *scramClient) clientFirst() []byte { return []byte("n,," + c.clientFirstBare) }

// clientFinal answers the server-first message with the proof.
func (c *scramClient) clientFinal(serverFirst []byte) ([]byte, error) {
	var nonce, salt []byte
	iters := 0
	for _, attr := range bytes.Split(serverFirst, []byte(",")) {
		if len(attr) < 2 || attr[1] != '=' {
			continue
		}
		v := attr[2:]
		switch attr[0] {
		case 'r':
			nonce = v
		case 's':
			var err error
			if salt, err = base64.StdEncoding.DecodeString(string(v)); err != nil {
				return nil, errors.New("SCRAM: bad salt from the gateway")
			}
		case 'i':
			var err error
			if iters, err = strconv.Atoi(string(v)); err != nil || iters < 1 {
				return nil, errors.New("SCRAM: bad iteration count from the gateway")
			}
		}
	}
	if !bytes.HasPrefix(nonce, []byte(c.clientNonce)) || len(nonce) == len(c.clientNonce) || salt == nil || iters == 0 {
		return nil, errors.New("SCRAM: invalid server-first message from the gateway")
	}
	var err error
	c.saltedPassword, err = pbkdf2.Key(sha256.New, c.password, salt, iters, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("SCRAM: %w", err)
	}
	withoutProof := "c=biws,r=" + string(nonce)
	c.authMessage = []byte(c.clientFirstBare + "," + string(serverFirst) + "," + withoutProof)
	clientKey := hmacSHA256(c.saltedPassword, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	sig := hmacSHA256(storedKey[:], c.authMessage)
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verifyServerFinal checks the server's signature, proving it knew the token's verifier.
func (c *scramClient) verifyServerFinal(serverFinal []byte) error {
	if c.saltedPassword == nil || !bytes.HasPrefix(serverFinal, []byte("v=")) {
		return errors.New("SCRAM: invalid server-final message from the gateway")
	}
	got, err := base64.StdEncoding.DecodeString(string(serverFinal[2:]))
	if err != nil {
		return errors.New("SCRAM: invalid server signature")
	}
	serverKey := hmacSHA256(c.saltedPassword, []byte("Server Key"))
	if !hmac.Equal(got, hmacSHA256(serverKey, c.authMessage)) {
		return errors.New("SCRAM: the gateway's signature does not match")
	}
	return nil
}

func hmacSHA256(key, data []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(data)
	return h.Sum(nil)
}
