package postgres

// inspector sees whole messages of the types it wants as the pump frames
// them, and may rewrite them.
//
// msg is the whole message (type byte and length included), borrowed from
// the pump's buffer and valid only during the call. The inspector either
// rewrites msg in place and returns it, returns a replacement (any bytes,
// possibly several messages, or nil to drop it) built in out, or returns an
// error, which ends the relay. Returned slices must stay valid until the
// next call.
type inspector interface {
	// wants reports whether messages of type typ must be inspected; the
	// pump calls it once per message, so it must be a table lookup.
	wants(typ byte) bool
	inspect(msg []byte, out []byte) ([]byte, error)
	// tooLarge is called instead of inspect for a wanted message longer than
	// the inspection limit, with the bytes of it at hand (type byte first).
	// It returns pass to let the message stream through uninspected, or what
	// to send in its place (the pump then discards the message's body), or
	// an error.
	tooLarge(head []byte, size int, out []byte) (repl []byte, pass bool, err error)
}
