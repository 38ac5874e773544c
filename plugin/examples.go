package plugin

// The Examples section of each command's --help (the buildx and cosign
// convention): a few realistic lines, indented as the docker CLI's help
// indents them. Kept together so that they read as one walkthrough.
const (
	rootExample = `  docker trustcache keys generate --name ci-main
  docker trustcache sign --key ci-main.key registry.example.com/team/app-cache:main
  docker trustcache build --builder ci --cache-from registry.example.com/team/app-cache:main -t app .`

	buildExample = `  # Import only verified caches, pinned to their digests, on a builder that
  # can export registry cache (docker buildx create --driver docker-container --name ci)
  docker trustcache build --builder ci --cache-from registry.example.com/team/app-cache:main -t app .

  # On the trusted builder (CI on main): export the cache and sign it
  docker trustcache build --builder ci --sign --key ci-main.key \
    --cache-to type=registry,ref=registry.example.com/team/app-cache:main,mode=max -t app .`

	bakeExample = `  docker trustcache bake --builder ci
  docker trustcache bake --builder ci --trust-policy ci/trustcache.yaml --sign --key ci-main.key app`

	signExample = `  docker trustcache sign --key ci-main.key registry.example.com/team/app-cache:main
  docker trustcache sign --key env://TRUSTCACHE_KEY -a pipeline=nightly registry.example.com/team/app-cache:main
  docker trustcache sign --keyless registry.example.com/team/app-cache:main`

	verifyExample = `  docker trustcache verify registry.example.com/team/app-cache:main

  # A CI gate: exit 0 trusted, 3 untrusted, 4 inconclusive, 5 missing
  docker trustcache verify --trust-policy ci/trustcache.yaml --format json registry.example.com/team/app-cache:main`

	provenanceExample = `  docker trustcache provenance registry.example.com/team/app:main
  docker trustcache provenance --depth 2 --format json registry.example.com/team/app:main`

	keysExample = `  docker trustcache keys generate --name ci-main
  docker trustcache keys id ci-main.pub`

	keysGenerateExample = `  docker trustcache keys generate --name ci-main
  docker trustcache keys generate --name release --dir keys`

	keysIDExample = `  docker trustcache keys id keys/ci-main.pub
  docker trustcache keys id cosign.pub`

	policyExample = `  docker trustcache policy init
  docker trustcache policy lint
  docker trustcache policy explain registry.example.com/team/app-cache:main`

	policyInitExample = `  docker trustcache policy init
  docker trustcache policy init ci/trustcache.yaml`

	policyLintExample = `  docker trustcache policy lint
  docker trustcache policy lint ci/trustcache.yaml`

	policyExplainExample = `  docker trustcache policy explain registry.example.com/team/app-cache:pr-42
  docker trustcache policy explain --trust-policy ci/trustcache.yaml --format json registry.example.com/team/app-cache:main`

	ledgerExample = `  docker trustcache ledger ls
  docker trustcache ledger prune`

	ledgerLsExample = `  docker trustcache ledger ls
  docker trustcache ledger ls --format json`

	ledgerPruneExample = `  docker trustcache ledger prune
  docker trustcache ledger prune --all`

	serveExample = `  docker trustcache serve --buildkit unix:///run/buildkit/buildkitd.sock \
    --listen unix:///run/trustcache/buildkitd.sock --trust-policy /etc/trustcache/policy.yaml
  docker buildx create --name shared --driver remote unix:///run/trustcache/buildkitd.sock`

	installExample = `  docker trustcache install --alias-builder
  docker trustcache install --check`

	uninstallExample = `  docker trustcache uninstall --alias-builder`

	builderExample = `  docker trustcache builder create --use --trust-policy .trustcache.yaml
  docker trustcache builder ls
  docker trustcache builder rm trustcache`

	builderCreateExample = `  docker trustcache builder create --use --trust-policy .trustcache.yaml
  docker trustcache builder create --name pr --trust-policy policy.yaml --allow group:ci-pr
  docker trustcache builder create --name shared --buildkit unix:///run/buildkit/buildkitd.sock --trust-policy policy.yaml`

	builderRmExample = `  docker trustcache builder rm trustcache`

	builderLsExample = `  docker trustcache builder ls`

	builderInspectExample = `  docker trustcache builder inspect trustcache
  docker trustcache builder inspect --format json trustcache`

	builderLogsExample = `  docker trustcache builder logs trustcache
  docker trustcache builder logs --follow trustcache`

	builderReloadExample = `  docker trustcache builder reload trustcache
  docker trustcache builder reload --trust-policy new-policy.yaml trustcache`
)
