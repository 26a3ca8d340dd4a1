// Package resume lets a session stream outlive the tunnel it started on.
//
// A resumable stream wraps a transport.Stream on each side (the gateway's
// Dispatcher and the agent's Registry). Every byte of session data has an
// offset; each side keeps the bytes it sent until the peer acknowledges them
// (the replay buffer, which is also the send window) and counts the bytes it
// has delivered to its reader. When the tunnel under a stream fails, both
// sides keep their session open: the client's connection on the gateway, the
// upstream connection on the agent. The gateway then opens a resume stream to
// the agent (same or new tunnel, any transport) naming the session and the
// bytes it has received; the agent answers with its own count, and each side
// replays what the other has not seen. Nothing is lost or duplicated.
//
// A session ends for good, with an *Error saying why, when the agent does not
// come back within the grace period, when the agent no longer knows the
// session (it restarted: its upstream connections died with it), or when a
// replay buffer cannot cover the peer's position.
//
// Wire format inside the underlying stream: frames of one type byte and a
// fixed header, big-endian.
//
//	'D' len:u32 ack:u64 data   session data; ack = bytes the sender has received
//	'A' ack:u64                acknowledgement only
//	'F' end:u64                the sender's data ends at offset end (CloseWrite)
//	'X' len:u16 reason         the sender closed the stream for good
//	'R' recv:u64               agent's first frame on a resume stream
package resume
