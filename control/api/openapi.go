package api

import (
	_ "embed"
	"net/http"
)

// The OpenAPI document lives in docs/openapi.yaml; this package embeds a
// copy (go:embed cannot reach outside the package directory). A test checks
// that the two are identical and that the document lists exactly the routes
// of the route table.
//
//go:generate cp ../../docs/openapi.yaml openapi.yaml
//go:embed openapi.yaml
var openAPIDoc []byte

// OpenAPI returns the API's OpenAPI 3.1 document (YAML).
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(openAPIDoc)
}
