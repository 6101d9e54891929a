package main

// The stand-in's database, as Aidbox has one: BOX_DB_HOST, BOX_DB_PORT, BOX_DB_DATABASE,
// BOX_DB_USER and BOX_DB_PASSWORD name a PostgreSQL server that must answer before the web port
// opens, and /health checks it. It speaks just enough of the PostgreSQL protocol (version 3.0)
// for that: a startup message, cleartext, MD5 or SCRAM-SHA-256 authentication, and one
// `SELECT 1`. Its errors use the PostgreSQL JDBC driver's words, which Aidbox's log shows and
// the operator reads (status/database.py).
//
// STANDIN_DATABASE=none runs without a database, for tests about other things.

import (
	"bufio"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

type database struct {
	host, port, name, user, password string
}

// databaseFromEnv returns nil for STANDIN_DATABASE=none, else the settings; an Aidbox without
// BOX_DB_HOST has nowhere to keep its data and does not start.
func databaseFromEnv(getenv func(string) string) (*database, error) {
	if getenv("STANDIN_DATABASE") == "none" {
		return nil, nil
	}
	db := &database{
		host:     getenv("BOX_DB_HOST"),
		port:     getenv("BOX_DB_PORT"),
		name:     getenv("BOX_DB_DATABASE"),
		user:     getenv("BOX_DB_USER"),
		password: getenv("BOX_DB_PASSWORD"),
	}
	if db.port == "" {
		db.port = "5432"
	}
	if db.host == "" || db.user == "" {
		return nil, errors.New("no database configured: set BOX_DB_HOST, BOX_DB_USER and BOX_DB_PASSWORD")
	}
	if db.name == "" {
		db.name = db.user
	}
	return db, nil
}

// ping connects, authenticates and runs SELECT 1.
func (db *database) ping(timeout time.Duration) error {
	address := net.JoinHostPort(db.host, db.port)
	conn, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		return dialError(address, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	c := &pgConn{r: bufio.NewReader(conn), w: conn}
	if err := c.startup(db.user, db.name); err != nil {
		return err
	}
	if err := c.authenticate(db.user, db.password); err != nil {
		return err
	}
	if err := c.untilReady(); err != nil {
		return err
	}
	if err := c.send('Q', []byte("SELECT 1\x00")); err != nil {
		return err
	}
	if err := c.untilReady(); err != nil {
		return err
	}
	return c.send('X', nil)
}

func dialError(address string, err error) error {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Errorf("org.postgresql.util.PSQLException: The connection attempt failed. "+
			"Caused by: java.net.UnknownHostException: %s", dnsErr.Name)
	case strings.Contains(err.Error(), "refused"):
		return fmt.Errorf("org.postgresql.util.PSQLException: Connection to %s refused. Check "+
			"that the hostname and port are correct and that the postmaster is accepting "+
			"TCP/IP connections.", address)
	default:
		return fmt.Errorf("org.postgresql.util.PSQLException: The connection attempt failed. "+
			"Caused by: java.net.SocketTimeoutException: Connect timed out (%v)", err)
	}
}

type pgConn struct {
	r *bufio.Reader
	w io.Writer
}

func (c *pgConn) send(kind byte, payload []byte) error {
	msg := make([]byte, 0, 5+len(payload))
	if kind != 0 {
		msg = append(msg, kind)
	}
	msg = binary.BigEndian.AppendUint32(msg, uint32(4+len(payload)))
	msg = append(msg, payload...)
	_, err := c.w.Write(msg)
	return err
}

func (c *pgConn) receive() (byte, []byte, error) {
	var header [5]byte
	if _, err := io.ReadFull(c.r, header[:]); err != nil {
		return 0, nil, fmt.Errorf("org.postgresql.util.PSQLException: An I/O error occurred while sending to the backend: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(header[1:])-4)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	if header[0] == 'E' {
		return 0, nil, serverError(body)
	}
	return header[0], body, nil
}

// serverError words an ErrorResponse as the JDBC driver does: "SEVERITY: message".
func serverError(body []byte) error {
	fields := map[byte]string{}
	for len(body) > 1 {
		end := strings.IndexByte(string(body[1:]), 0)
		if end < 0 {
			break
		}
		fields[body[0]] = string(body[1 : 1+end])
		body = body[2+end:]
	}
	return fmt.Errorf("org.postgresql.util.PSQLException: %s: %s (SQLSTATE %s)", fields['S'], fields['M'], fields['C'])
}

func (c *pgConn) startup(user, name string) error {
	payload := binary.BigEndian.AppendUint32(nil, 196608) // protocol 3.0
	for _, kv := range []string{"user", user, "database", name, "application_name", "aidbox-standin"} {
		payload = append(append(payload, kv...), 0)
	}
	return c.send(0, append(payload, 0))
}

func (c *pgConn) untilReady() error {
	for {
		kind, _, err := c.receive()
		if err != nil {
			return err
		}
		if kind == 'Z' {
			return nil
		}
	}
}

func (c *pgConn) authenticate(user, password string) error {
	for {
		kind, body, err := c.receive()
		if err != nil {
			return err
		}
		if kind != 'R' || len(body) < 4 {
			return fmt.Errorf("unexpected message %q during authentication", kind)
		}
		switch code := binary.BigEndian.Uint32(body); code {
		case 0:
			return nil
		case 3:
			err = c.send('p', append([]byte(password), 0))
		case 5:
			err = c.send('p', append([]byte(md5Password(user, password, body[4:8])), 0))
		case 10:
			err = c.scram(password)
		default:
			err = fmt.Errorf("authentication method %d is not supported", code)
		}
		if err != nil {
			return err
		}
	}
}

func md5Password(user, password string, salt []byte) string {
	inner := md5.Sum([]byte(password + user))
	outer := md5.Sum(append([]byte(hex.EncodeToString(inner[:])), salt...))
	return "md5" + hex.EncodeToString(outer[:])
}

func hmacSHA256(key []byte, text string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(text))
	return mac.Sum(nil)
}

// scram runs SCRAM-SHA-256 (RFC 5802/7677) up to the server's final message, which it checks.
func (c *pgConn) scram(password string) error {
	nonce := make([]byte, 18)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	clientFirstBare := "n=,r=" + base64.StdEncoding.EncodeToString(nonce)
	first := "n,," + clientFirstBare
	payload := append([]byte("SCRAM-SHA-256\x00"), binary.BigEndian.AppendUint32(nil, uint32(len(first)))...)
	if err := c.send('p', append(payload, first...)); err != nil {
		return err
	}
	serverFirst, err := c.saslStep(11)
	if err != nil {
		return err
	}
	attrs := scramAttributes(serverFirst)
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil || !strings.HasPrefix(attrs["r"], clientFirstBare[5:]) {
		return errors.New("SCRAM: the server's first message is malformed")
	}
	var iterations int
	fmt.Sscanf(attrs["i"], "%d", &iterations)
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	if err != nil {
		return err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	withoutProof := "c=biws,r=" + attrs["r"]
	authMessage := clientFirstBare + "," + serverFirst + "," + withoutProof
	signature := hmacSHA256(storedKey[:], authMessage)
	for i := range clientKey {
		clientKey[i] ^= signature[i]
	}
	final := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(clientKey)
	if err := c.send('p', []byte(final)); err != nil {
		return err
	}
	serverFinal, err := c.saslStep(12)
	if err != nil {
		return err
	}
	expected := hmacSHA256(hmacSHA256(salted, "Server Key"), authMessage)
	if scramAttributes(serverFinal)["v"] != base64.StdEncoding.EncodeToString(expected) {
		return errors.New("SCRAM: the server's signature does not match")
	}
	return nil
}

func (c *pgConn) saslStep(code uint32) (string, error) {
	kind, body, err := c.receive()
	if err != nil {
		return "", err
	}
	if kind != 'R' || len(body) < 4 || binary.BigEndian.Uint32(body) != code {
		return "", fmt.Errorf("SCRAM: expected authentication message %d", code)
	}
	return string(body[4:]), nil
}

func scramAttributes(message string) map[string]string {
	attrs := map[string]string{}
	for _, part := range strings.Split(message, ",") {
		if len(part) > 2 && part[1] == '=' {
			attrs[part[:1]] = part[2:]
		}
	}
	return attrs
}
