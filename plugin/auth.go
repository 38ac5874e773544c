package plugin

import (
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
)

// dockerKeychain resolves registry credentials through the docker CLI's
// config file and its credential helpers, exactly as "docker push" does.
type dockerKeychain struct{ cli command.Cli }

// Resolve implements authn.Keychain.
func (k dockerKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	host := target.RegistryStr()
	if host == "index.docker.io" {
		host = "https://index.docker.io/v1/"
	}
	cfg, err := k.cli.ConfigFile().GetAuthConfig(host)
	if err != nil {
		return nil, err
	}
	if cfg.Username == "" && cfg.Password == "" && cfg.Auth == "" && cfg.IdentityToken == "" && cfg.RegistryToken == "" {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      cfg.Username,
		Password:      cfg.Password,
		Auth:          cfg.Auth,
		IdentityToken: cfg.IdentityToken,
		RegistryToken: cfg.RegistryToken,
	}), nil
}
