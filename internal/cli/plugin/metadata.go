package plugin

import (
	"encoding/json"
	"io"

	"github.com/docker/cli/cli-plugins/metadata"
)

// WriteMetadata writes meta as the docker CLI reads it from
// "docker-cli-plugin-metadata".
func WriteMetadata(w io.Writer, meta metadata.Metadata) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "     ")
	return enc.Encode(meta)
}
