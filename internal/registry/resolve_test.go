package registry_test

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

func TestDigest(t *testing.T) {
	host := testreg.New(t).Host
	tag, err := name.NewTag(host + "/team/cache:main")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()

	got, err := registry.Digest(tag)
	if err != nil || got != want {
		t.Fatalf("Digest(tag) = %v, %v; want %v", got, err, want)
	}
	// A digest reference is its own answer: no request, even to a
	// registry that is gone.
	d, _ := name.NewDigest("127.0.0.1:1/team/cache@" + want.String())
	if got, err := registry.Digest(d); err != nil || got != want {
		t.Fatalf("Digest(digest) = %v, %v; want %v without a request", got, err, want)
	}
	missing, _ := name.NewTag(host + "/team/cache:nope")
	if _, err := registry.Digest(missing); !registry.IsNotFound(err) {
		t.Fatalf("Digest(missing tag) = %v; want an error IsNotFound recognizes", err)
	}
}
