package pipeline

import (
	"encoding/base64"
	"testing"
)

// TestMergeAuthConfig: the endpoint's entry is added to the user's
// DOCKER_AUTH_CONFIG, theirs kept; one docker/cli would not parse is
// replaced, with an error to warn about.
func TestMergeAuthConfig(t *testing.T) {
	t.Parallel()
	ours := base64.StdEncoding.EncodeToString([]byte("trustcache:s3cret"))
	theirs := base64.StdEncoding.EncodeToString([]byte("me:pat"))
	tests := []struct {
		name, existing, want string
		err                  bool
	}{
		{"none", "", `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"}}}`, false},
		{"the user's kept", `{"auths":{"reg.example":{"auth":"` + theirs + `"}}}`, `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"},"reg.example":{"auth":"` + theirs + `"}}}`, false},
		{"the same host replaced", `{"auths":{"127.0.0.1:1234":{"auth":"` + theirs + `"}}}`, `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"}}}`, false},
		{"not JSON", `{"auths":`, `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"}}}`, true},
		{"an unknown field", `{"auths":{},"credsStore":"x"}`, `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"}}}`, true},
		{"two objects", `{"auths":{}} {}`, `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"}}}`, true},
	}
	for _, tt := range tests {
		got, err := mergeAuthConfig(tt.existing, "127.0.0.1:1234", "trustcache", "s3cret")
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("%s: mergeAuthConfig(%q) = %s, %v; want %s, error %v", tt.name, tt.existing, got, err, tt.want, tt.err)
		}
	}
}
