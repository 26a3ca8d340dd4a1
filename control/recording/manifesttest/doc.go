// Package manifesttest is the conformance suite for recording.Manifest
// implementations (the control store's adapter runs it too), so that the
// Recorder's assumptions hold for every backend.
//
// manifesttest imports control/recording only (and testing).
package manifesttest
