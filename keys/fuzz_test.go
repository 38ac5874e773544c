package keys

import (
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"testing"
)

func FuzzParsePublicKeyPEM(f *testing.F) {
	for _, key := range []crypto.Signer{mustECDSA(f, elliptic.P256()), mustEd25519(f), mustRSA(f, 2048)} {
		data, err := MarshalPublicKeyPEM(key.Public())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Add([]byte(""))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	f.Add(pemOf("PUBLIC KEY", []byte{0x30, 0x03, 0x02, 0x01, 0x00}))
	f.Add(fixtureKeyPair(f, "").privPEM)
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := ParsePublicKeyPEM(data)
		if err != nil {
			if pub != nil {
				t.Errorf("ParsePublicKeyPEM(%q) = %v, %v; want nil key with the error", data, pub, err)
			}
			return
		}
		if _, err := ID(pub); err != nil {
			t.Errorf("ID(ParsePublicKeyPEM(%q)) = %v; want nil error", data, err)
		}
	})
}

func FuzzLoadPrivateKey(f *testing.F) {
	fx := fixtureKeyPair(f, "pw")
	der, err := x509.MarshalPKCS8PrivateKey(fx.key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fx.privPEM, []byte("pw"))
	f.Add(fx.privPEM, []byte("wrong"))
	f.Add(fx.privPEM[:len(fx.privPEM)-40], []byte("pw"))
	f.Add(fx.pubPEM, []byte(""))
	f.Add(pemOf("PRIVATE KEY", der), []byte(""))
	f.Add(pemOf(CosignPrivateKeyPEMType, []byte(`{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":""},"cipher":{"name":"nacl/secretbox","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}`)), []byte(""))
	f.Add(pemOf(SigstorePrivateKeyPEMType, []byte(`{"kdf":{"name":"scrypt","params":{"N":1,"r":1,"p":1}}}`)), []byte(""))
	f.Add([]byte("garbage"), []byte("pw"))
	f.Fuzz(func(t *testing.T, data, password []byte) {
		signer, err := LoadPrivateKey(data, password)
		if err != nil {
			if signer != nil {
				t.Errorf("LoadPrivateKey(%q) = %T, %v; want a nil signer with the error", data, signer, err)
			}
			return
		}
		if _, err := Sign(signer, []byte("payload")); err != nil {
			t.Errorf("Sign(LoadPrivateKey(%q)) = %v; want nil error", data, err)
		}
	})
}
