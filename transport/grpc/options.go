package grpctun

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/sluice-gw/sluice/transport"
)

// Metadata keys carrying the agent's credentials on both RPCs.
const (
	mdName = "sluice-agent-name"
	mdKey  = "sluice-agent-key"
)

const (
	maxMsgSize        = transport.MaxFrameData + 64<<10 // a full frame plus headroom
	streamWindow      = 1 << 20                         // per-stream HTTP/2 window
	connWindow        = 16 << 20                        // per-connection HTTP/2 window
	ioBufferSize      = 64 << 10
	keepaliveTime     = 10 * time.Second // ping an idle peer this often
	keepaliveTimeout  = 10 * time.Second // and give up this long after: dead peer noticed in ~20 s
	keepaliveMinTime  = 5 * time.Second  // least ping interval the server accepts
	defaultHelloWait  = 10 * time.Second
	defaultPingEvery  = 10 * time.Second
	defaultMaxPending = 1024
	defaultMaxStreams = 8192
)

func serverOptions(maxStreams uint32) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMsgSize),
		grpc.MaxSendMsgSize(maxMsgSize),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.ReadBufferSize(ioBufferSize),
		grpc.WriteBufferSize(ioBufferSize),
		grpc.MaxConcurrentStreams(maxStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
	}
}

func dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithReadBufferSize(ioBufferSize),
		grpc.WithWriteBufferSize(ioBufferSize),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
	}
}
