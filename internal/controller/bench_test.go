package controller

import "testing"

// BenchmarkCreatePort measures one port creation over HTTP (MAC and
// address allocation, attachments; one etcd transaction with fsync).
func BenchmarkCreatePort(b *testing.B) {
	e := newEnv(b, opts{})
	net := str(e.network(obj{}), "id")
	e.subnet(net, "10.0.0.0/8", nil)
	b.ResetTimer()
	for range b.N {
		e.port(net, obj{"binding:host_id": "h1"})
	}
}

// BenchmarkCreateNetwork measures one network creation (VNI and route
// target allocation).
func BenchmarkCreateNetwork(b *testing.B) {
	e := newEnv(b, opts{vnis: "1:16777215", rtnn: "1:4294967295"})
	b.ResetTimer()
	for range b.N {
		e.network(obj{})
	}
}
