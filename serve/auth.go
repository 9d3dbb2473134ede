package serve

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	wire "github.com/jeroenrinzema/psql-wire"
	"github.com/jeroenrinzema/psql-wire/codes"
	pgerror "github.com/jeroenrinzema/psql-wire/errors"
	"github.com/jeroenrinzema/psql-wire/pkg/buffer"
	"github.com/jeroenrinzema/psql-wire/pkg/types"
	"github.com/xdg-go/scram"
)

// Authentication request codes of the PostgreSQL protocol.
const (
	authOK           = 0
	authSASL         = 10
	authSASLContinue = 11
	authSASLFinal    = 12
	iterations       = 4096
)

// credentials turns each user's password, or the SCRAM verifier
// PostgreSQL stores (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>),
// into what the SCRAM server checks a client's proof against.
func credentials(users map[string]string) (map[string]scram.StoredCredentials, error) {
	out := map[string]scram.StoredCredentials{}
	for name, secret := range users {
		if strings.HasPrefix(secret, "SCRAM-SHA-256$") {
			c, err := parseVerifier(secret)
			if err != nil {
				return nil, fmt.Errorf("serve.users %s: %w", name, err)
			}
			out[name] = c
			continue
		}
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return nil, err
		}
		client, err := scram.SHA256.NewClient(name, secret, "")
		if err != nil {
			return nil, fmt.Errorf("serve.users %s: %w", name, err)
		}
		out[name] = client.GetStoredCredentials(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	}
	return out, nil
}

// parseVerifier reads a SCRAM-SHA-256 verifier as PostgreSQL stores it.
func parseVerifier(v string) (scram.StoredCredentials, error) {
	bad := errors.New("not a SCRAM-SHA-256 verifier (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)")
	head, keys, ok := strings.Cut(strings.TrimPrefix(v, "SCRAM-SHA-256$"), "$")
	iters, salt, ok1 := strings.Cut(head, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	if !ok || !ok1 || !ok2 {
		return scram.StoredCredentials{}, bad
	}
	n, err := strconv.Atoi(iters)
	dec := func(s string) []byte {
		b, e := base64.StdEncoding.DecodeString(s)
		if e != nil {
			err = e
		}
		return b
	}
	c := scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(dec(salt)), Iters: n}, StoredKey: dec(stored), ServerKey: dec(server)}
	if err != nil || n <= 0 {
		return scram.StoredCredentials{}, bad
	}
	return c, nil
}

// scramAuth is the SCRAM-SHA-256 exchange of the PostgreSQL protocol
// (SASL): the user is the one the client's startup message names, as in
// PostgreSQL, which ignores the name inside the SCRAM messages.
func scramAuth(creds map[string]scram.StoredCredentials) wire.AuthStrategy {
	return func(ctx context.Context, w *buffer.Writer, r *buffer.Reader) (context.Context, error) {
		user := wire.ClientParameters(ctx)[wire.ParamUsername]
		server, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) {
			if c, ok := creds[user]; ok {
				return c, nil
			}
			return mock(user), nil
		})
		if err != nil {
			return ctx, err
		}
		conv := server.NewConversation()
		w.Start(types.ServerAuth)
		w.AddInt32(authSASL)
		w.AddString("SCRAM-SHA-256")
		w.AddNullTerminate()
		w.AddNullTerminate()
		if err := w.End(); err != nil {
			return ctx, err
		}
		first, err := readSASL(r, true)
		if err != nil {
			return ctx, err
		}
		serverFirst, err := conv.Step(first)
		if err != nil {
			return ctx, refuse(w, user)
		}
		if err := writeAuth(w, authSASLContinue, serverFirst); err != nil {
			return ctx, err
		}
		final, err := readSASL(r, false)
		if err != nil {
			return ctx, err
		}
		serverFinal, err := conv.Step(final)
		if err != nil || !conv.Valid() {
			return ctx, refuse(w, user)
		}
		if err := writeAuth(w, authSASLFinal, serverFinal); err != nil {
			return ctx, err
		}
		w.Start(types.ServerAuth)
		w.AddInt32(authOK)
		return ctx, w.End()
	}
}

// mockSecret keys the mock credentials of unknown users.
var mockSecret = func() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}()

// mock is what an unknown user authenticates against: as PostgreSQL does,
// the exchange runs to its end with a salt that is the same on every try
// (derived from the name) and a key nobody knows, so that a client cannot
// tell an unknown user from a wrong password.
func mock(user string) scram.StoredCredentials {
	mac := hmac.New(sha256.New, mockSecret)
	mac.Write([]byte(user))
	sum := mac.Sum(nil)
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(sum[:16]), Iters: iterations},
		StoredKey: sum, ServerKey: sum}
}

// readSASL reads a SASLInitialResponse (mechanism, length, data) or a
// SASLResponse (data).
func readSASL(r *buffer.Reader, initial bool) (string, error) {
	t, _, err := r.ReadTypedMsg()
	if err != nil {
		return "", err
	}
	if t != types.ClientPassword {
		return "", errors.New("expected a SASL response")
	}
	if initial {
		mech, err := r.GetString()
		if err != nil {
			return "", err
		}
		if mech != "SCRAM-SHA-256" {
			return "", fmt.Errorf("unsupported SASL mechanism %q", mech)
		}
		n, err := r.GetInt32()
		if err != nil {
			return "", err
		}
		data, err := r.GetBytes(int(n))
		return string(data), err
	}
	return string(r.Msg), nil
}

func writeAuth(w *buffer.Writer, code int32, data string) error {
	w.Start(types.ServerAuth)
	w.AddInt32(code)
	w.AddBytes([]byte(data))
	return w.End()
}

// errRefused marks a connection the server turned away.
var errRefused = errors.New("connection refused")

// authenticate admits the connection, then runs the SCRAM exchange.
func (s *Server) authenticate(creds map[string]scram.StoredCredentials) wire.AuthStrategy {
	exchange := scramAuth(creds)
	return func(ctx context.Context, w *buffer.Writer, r *buffer.Reader) (context.Context, error) {
		if err := s.admit(ctx, w); err != nil {
			return ctx, err
		}
		ctx, err := exchange(ctx, w, r)
		if errors.Is(err, errRefused) {
			s.metrics.refused.WithLabelValues("authentication").Inc()
		}
		return ctx, err
	}
}

// admit refuses a connection beyond serve.max_connections, and one from
// another machine without TLS unless serve.allow_plaintext, before any
// password is exchanged.
func (s *Server) admit(ctx context.Context, w *buffer.Writer) error {
	c, err := s.ln.client(ctx)
	if err != nil {
		return err
	}
	switch {
	case c.over:
		s.metrics.refused.WithLabelValues("max_connections").Inc()
		return fatal(w, codes.TooManyConnections, fmt.Errorf("sorry, too many clients already (serve.max_connections is %d)", s.cfg.MaxConnections))
	case !(c.askedTLS && s.cfg.TLS != nil) && !c.loopback() && !s.cfg.AllowPlaintext:
		s.metrics.refused.WithLabelValues("plaintext").Inc()
		return fatal(w, codes.InvalidAuthorizationSpecification, fmt.Errorf("connection from %s without TLS refused: connect with sslmode=require (serve.allow_plaintext is off)", c.RemoteAddr()))
	}
	return nil
}

// fatal sends the client a FATAL error and returns it, marked errRefused.
func fatal(w *buffer.Writer, code codes.Code, err error) error {
	err = pgerror.WithSeverity(pgerror.WithCode(err, code), pgerror.LevelFatal)
	if werr := wire.WriteUnterminatedError(w, err); werr != nil {
		return werr
	}
	return fmt.Errorf("%w: %w", errRefused, err)
}

// refuse tells the client its password is wrong, the same way for an
// unknown user, so that user names cannot be probed.
func refuse(w *buffer.Writer, user string) error {
	return fatal(w, codes.InvalidPassword, fmt.Errorf("password authentication failed for user %q", user))
}
