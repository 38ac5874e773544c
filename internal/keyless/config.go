package keyless

import (
	"errors"
	"fmt"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
)

// API versions the clients in signer.go speak: Fulcio v1 (its /api/v2
// signingCert endpoint is "API version 1" in signing configs) and RFC 3161
// timestamp authorities v1, as sigstore-go's sign package.
var (
	fulcioAPIVersions = []uint32{1}
	tsaAPIVersions    = []uint32{1}
)

// Services are the sigstore service URLs keyless signing uses: one Fulcio
// and the timestamp authorities whose RFC 3161 timestamps every signature
// carries.
type Services struct {
	Source string   // the signing config file, or "the public-good instance"
	Fulcio string   // base URL (POST /api/v2/signingCert)
	TSAs   []string // timestamp URLs (POST, application/timestamp-query)
	// TransparencyLogs lists the logs the config names. trustcache does not
	// upload to them (see docs/ci.md: a verified time comes from the
	// timestamp authority); they are kept for the caller's warning.
	TransparencyLogs []string
}

// Public-good sigstore instance URLs, the default without --signing-config.
const (
	PublicGoodFulcio = "https://fulcio.sigstore.dev"
	PublicGoodTSA    = "https://timestamp.sigstore.dev/api/v1/timestamp"
)

// PublicGood returns the public-good instance's Fulcio and timestamp
// authority.
func PublicGood() Services {
	return Services{Source: "the public-good sigstore instance", Fulcio: PublicGoodFulcio, TSAs: []string{PublicGoodTSA}}
}

// LoadSigningConfig reads a sigstore signing config (protobuf-specs
// SigningConfig v0.2 JSON, what `cosign signing-config create` writes) and
// selects, as of now, the Fulcio and timestamp authorities to use with
// sigstore-go's selection rules (newest valid service of a supported API
// version; the TSA config's selector and count). A config without a
// Fulcio or without a timestamp authority is refused: a keyless signature
// needs a verified signing time within the certificate's 10 minutes.
func LoadSigningConfig(path string, now time.Time) (Services, error) {
	sc, err := root.NewSigningConfigFromPath(path)
	if err != nil {
		return Services{}, fmt.Errorf("signing config %s: %w", path, err)
	}
	return selectServices(path, sc, now)
}

func selectServices(path string, sc *root.SigningConfig, now time.Time) (Services, error) {
	s := Services{Source: path}
	if len(sc.FulcioCertificateAuthorityURLs()) == 0 {
		return Services{}, fmt.Errorf("signing config %s: no certificate authority (caUrls): keyless signing needs a Fulcio", path)
	}
	ca, err := root.SelectService(sc.FulcioCertificateAuthorityURLs(), fulcioAPIVersions, now)
	if err != nil {
		return Services{}, fmt.Errorf("signing config %s: caUrls: %w", path, err)
	}
	s.Fulcio = ca.URL
	if len(sc.TimestampAuthorityURLs()) == 0 {
		return Services{}, fmt.Errorf("signing config %s: no timestamp authority (tsaUrls): keyless signatures need an RFC 3161 timestamp", path)
	}
	tsas, err := root.SelectServices(sc.TimestampAuthorityURLs(), sc.TimestampAuthorityURLsConfig(), tsaAPIVersions, now)
	if err != nil {
		return Services{}, fmt.Errorf("signing config %s: tsaUrls: %w", path, err)
	}
	for _, t := range tsas {
		s.TSAs = append(s.TSAs, t.URL)
	}
	if len(s.TSAs) == 0 {
		return Services{}, errors.New("signing config " + path + ": tsaUrls: no timestamp authority selected")
	}
	for _, l := range sc.RekorLogURLs() {
		s.TransparencyLogs = append(s.TransparencyLogs, l.URL)
	}
	return s, nil
}
