// Command minverify is the start-up baseline of e2e/bench.sh: the least a Go
// program does to verify one cosign key signature of a tag with
// go-containerregistry (resolve the tag, read its ".sig" manifest, check
// one ECDSA signature over the simple-signing payload and the digest it
// names), with no policy, no ledger and no docker CLI plugin framework.
// It is a measuring stick, not a verifier to use: it checks nothing else.
//
// A cold `docker trustcache verify` of a tag also reads the tag's signed
// head record (docs/fallback.md: the rollback bound of a host with no
// ledger record), concurrently with the tag and its signatures; so does
// minverify, unless -no-head: it checks the head's signature and that it
// names the tag's digest. All requests share one puller (one registry
// ping, one keep-alive connection pool), as trustcache's do.
//
//	minverify [-no-head] KEY.pub REGISTRY/REPO:TAG
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

const sigAnnotation = "dev.cosignproject.cosign/signature"

func main() {
	args := os.Args[1:]
	head := true
	if len(args) > 0 && args[0] == "-no-head" {
		head, args = false, args[1:]
	}
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: minverify [-no-head] KEY.pub REF")
		os.Exit(2)
	}
	if err := verify(args[0], args[1], head); err != nil {
		fmt.Fprintln(os.Stderr, "minverify:", err)
		os.Exit(1)
	}
	fmt.Println("verified")
}

func verify(keyFile, ref string, withHead bool) error {
	pemBytes, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return fmt.Errorf("%s: no PEM block", keyFile)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return err
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%s: not an ECDSA key", keyFile)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	puller, err := remote.NewPuller()
	if err != nil {
		return err
	}
	opts := []remote.Option{remote.Reuse(puller)}
	heads := make(chan headResult, 1)
	if tag, ok := r.(name.Tag); ok && withHead {
		go func() { heads <- readHead(tag, pub, opts) }()
	} else {
		heads <- headResult{}
	}
	desc, err := remote.Head(r, opts...)
	if err != nil {
		return err
	}
	sigTag := r.Context().Tag(strings.Replace(desc.Digest.String(), ":", "-", 1) + ".sig")
	raw, err := remote.Get(sigTag, opts...)
	if err != nil {
		return err
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw.Manifest, &m); err != nil {
		return err
	}
	if h := <-heads; h.err != nil {
		return h.err
	} else if h.digest != "" && h.digest != desc.Digest.String() {
		return fmt.Errorf("the tag's head record names %s, not %s", h.digest, desc.Digest)
	}
	for _, l := range m.Layers {
		sig, err := base64.StdEncoding.DecodeString(l.Annotations[sigAnnotation])
		if err != nil {
			continue
		}
		payload := l.Data
		if h := sha256.Sum256(payload); len(payload) == 0 || fmt.Sprintf("sha256:%x", h) != l.Digest.String() {
			blob, err := remote.Layer(r.Context().Digest(l.Digest.String()), opts...)
			if err != nil {
				return err
			}
			rc, err := blob.Compressed()
			if err != nil {
				return err
			}
			payload, err = io.ReadAll(io.LimitReader(rc, 1<<16))
			rc.Close()
			if err != nil {
				return err
			}
		}
		h := sha256.Sum256(payload)
		if !ecdsa.VerifyASN1(pub, h[:], sig) {
			continue
		}
		var p struct {
			Critical struct {
				Image struct {
					Digest string `json:"docker-manifest-digest"`
				} `json:"image"`
			} `json:"critical"`
		}
		if err := json.NewDecoder(bytes.NewReader(payload)).Decode(&p); err == nil && p.Critical.Image.Digest == desc.Digest.String() {
			return nil
		}
	}
	return errors.New("no valid signature")
}

type headResult struct {
	digest string // the digest the head names; "" for no head
	err    error
}

// readHead reads the head record of tag (trustcache-head-TAG, its payload
// embedded in the layer descriptor) and checks its signature with pub.
func readHead(tag name.Tag, pub *ecdsa.PublicKey, opts []remote.Option) headResult {
	raw, err := remote.Get(tag.Context().Tag("trustcache-head-"+tag.TagStr()), opts...)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return headResult{}
	}
	if err != nil {
		return headResult{err: err}
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw.Manifest, &m); err != nil || len(m.Layers) != 1 {
		return headResult{err: fmt.Errorf("head record: not one layer (%v)", err)}
	}
	l := m.Layers[0]
	sig, err := base64.StdEncoding.DecodeString(l.Annotations[sigAnnotation])
	if h := sha256.Sum256(l.Data); err != nil || fmt.Sprintf("sha256:%x", h) != l.Digest.String() || !ecdsa.VerifyASN1(pub, h[:], sig) {
		return headResult{err: errors.New("head record: no valid signature over its embedded payload")}
	}
	var p struct {
		Critical struct {
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
		} `json:"critical"`
	}
	if err := json.Unmarshal(l.Data, &p); err != nil {
		return headResult{err: err}
	}
	return headResult{digest: p.Critical.Image.Digest}
}
