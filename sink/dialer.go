package sink

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/medallionlake/medallion/config"
)

// Transport is the kafka-go transport (for writers and clients) with the
// dialer's TLS and SASL; d may be nil for plaintext.
func Transport(d *kafka.Dialer) *kafka.Transport {
	if d == nil {
		return &kafka.Transport{}
	}
	return &kafka.Transport{TLS: d.TLS, SASL: d.SASLMechanism}
}

// Dialer builds the Kafka dialer for the kafka config: TLS (with an
// optional CA and client certificate) and SASL PLAIN or SCRAM. Secrets come
// from the config, where they are ${ENV} references.
func Dialer(k config.Kafka) (*kafka.Dialer, error) {
	d := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, ClientID: k.ClientID}
	if k.TLS.Enabled {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: k.TLS.InsecureSkipVerify}
		if k.TLS.CAFile != "" {
			pem, err := os.ReadFile(k.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka.tls.ca_file %s: no certificates found", k.TLS.CAFile)
			}
			tc.RootCAs = pool
		}
		if k.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(k.TLS.CertFile, k.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls.cert_file/key_file: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		d.TLS = tc
	}
	var (
		mech sasl.Mechanism
		err  error
	)
	switch k.SASL.Mechanism {
	case "":
	case "plain":
		mech = plain.Mechanism{Username: k.SASL.Username, Password: k.SASL.Password}
	case "scram-sha-256":
		mech, err = scram.Mechanism(scram.SHA256, k.SASL.Username, k.SASL.Password)
	case "scram-sha-512":
		mech, err = scram.Mechanism(scram.SHA512, k.SASL.Username, k.SASL.Password)
	default:
		err = fmt.Errorf("unsupported mechanism %q", k.SASL.Mechanism)
	}
	if err != nil {
		return nil, fmt.Errorf("kafka.sasl: %w", err)
	}
	d.SASLMechanism = mech
	return d, nil
}
