package config

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse. It must never panic; a nil error
// must mean every required field is set and every derived field is valid;
// errors and warnings must be one line each.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte("[bgp]\nlocal_address=lo\nmy_as=4294967295\npeers=127.0.0.2,\n 127.0.0.3\n[api]\napi_port=1\n"))
	f.Add([]byte(base + "[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver=ovs\nhash_method_param=18446744073709551615\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, warnings, err := Parse("bgp.conf", data)
		for _, w := range warnings {
			if strings.ContainsAny(w, "\r\n") {
				t.Fatalf("multi-line warning %q", w)
			}
		}
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a Config with error %v", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if !c.BGP.LocalAddress.Is4() || c.BGP.MyAS == 0 {
			t.Fatalf("nil error but required fields unset: %+v", c.BGP)
		}
		if c.BGP.Port == 0 || c.API.Port == 0 || c.API.Host == "" || c.BGP.ConnectRetry <= 0 {
			t.Fatalf("nil error but invalid values: %+v", c)
		}
		for _, d := range []Dataplane{c.EVPN, c.IPVPN} {
			if !d.LocalAddress.Is4() || d.Options == nil {
				t.Fatalf("nil error but invalid dataplane: %+v", d)
			}
			switch d.Driver {
			case DriverDummy, DriverLinux, DriverOVS:
			default:
				t.Fatalf("non-canonical driver %q", d.Driver)
			}
		}
		_ = c.Sections()
	})
}
