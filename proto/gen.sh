#!/bin/sh
# Regenerates proto/tunnelpb from proto/tunnel.proto. Needs protoc plus
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
set -eu
cd "$(dirname "$0")"
PATH="$(go env GOPATH)/bin:$PATH"
command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
command -v protoc-gen-go >/dev/null || go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
command -v protoc-gen-go-grpc >/dev/null || go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
protoc -I . \
  --go_out=tunnelpb --go_opt=paths=source_relative \
  --go-grpc_out=tunnelpb --go-grpc_opt=paths=source_relative \
  tunnel.proto
