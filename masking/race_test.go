//go:build race

package masking

// raceEnabled: the race detector makes sync.Pool drop items, so the hash
// style allocates under it.
const raceEnabled = true
