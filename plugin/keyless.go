package plugin

import (
	"fmt"
	"io"
	"time"

	"github.com/docker-trustcache/docker-trustcache/internal/keyless"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
)

// keylessOptions are the keyless signing flags of sign, build and bake.
type keylessOptions struct {
	keyless       bool   // --keyless
	identityToken string // --identity-token TOKEN|@FILE
	signingConfig string // --signing-config FILE
}

// defaultKeylessBuilder is the builder name recorded in a keyless
// signature without --builder-name: the identity is the certificate's, and
// policies name identity builders by their certificate, not by this.
const defaultKeylessBuilder = "keyless"

// check rejects keyless flags without --keyless, and --keyless with a key.
func (o keylessOptions) check(key string) error {
	if !o.keyless {
		if o.identityToken != "" || o.signingConfig != "" {
			return usagef("--identity-token and --signing-config need --keyless")
		}
		return nil
	}
	if key != "" {
		return usagef("--keyless signs with a certificate from Fulcio, not a key: drop --key")
	}
	return nil
}

// loadKeylessSigner finds the identity token source and the sigstore
// services (--signing-config, else the public-good instance) and returns
// a signer that asks for a certificate at the first signature. Every
// failure here is a configuration error; nothing is requested yet.
func loadKeylessSigner(env *Env, warn io.Writer, o keylessOptions, builderName string) (signature.Signer, error) {
	ts, err := keyless.FindTokenSource(o.identityToken, env.getenv, nil)
	if err != nil {
		return signature.Signer{}, asUsage(err)
	}
	services := keyless.PublicGood()
	if o.signingConfig != "" {
		services, err = keyless.LoadSigningConfig(o.signingConfig, time.Now())
		if err != nil {
			return signature.Signer{}, asUsage(fmt.Errorf("--signing-config: %w", err))
		}
	}
	if len(services.TransparencyLogs) > 0 {
		fmt.Fprintf(warn, "note: %s names transparency logs; keyless signatures are timestamped by the timestamp authority and not uploaded to a log\n", services.Source)
	}
	s, err := keyless.New(keyless.Options{Services: services, Token: ts})
	if err != nil {
		return signature.Signer{}, asUsage(err)
	}
	if builderName == "" {
		builderName = defaultKeylessBuilder
	}
	return signature.Signer{Keyless: s, Builder: builderName}, nil
}
