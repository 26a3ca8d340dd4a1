// Package archtest enforces ARCHITECTURE.md's dependency rule over the real
// import graph (`go list -deps`): the data plane never imports control/, and
// masking imports none of our packages.
package archtest
