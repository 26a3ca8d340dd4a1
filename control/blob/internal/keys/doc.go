// Package keys is internal to control/blob: the errors and key rules that
// blob re-exports and its backends (fs, s3) use, kept apart so that blob can
// import the backends for Open without an import cycle.
//
// keys imports none of Sluice's packages.
package keys
