module github.com/bagpipe-go/bagpipe

go 1.26.8

require (
	github.com/osrg/gobgp/v4 v4.8.0 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/sys v0.45.0 // indirect
	gopkg.in/ini.v1 v1.67.3 // indirect
)
