package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"gopkg.in/ini.v1"
)

// DefaultConfigFile is where upstream's tools read the daemon
// configuration from.
const DefaultConfigFile = "/etc/bagpipe-bgp/bgp.conf"

// DefaultAPIPort is bagpipe-bgp's default [API] port.
const DefaultAPIPort = 8082

// ReadAPIPort returns the [API] port option of the bgp.conf at path, read
// leniently: only that option is looked at (section and option names are
// case-insensitive, as with oslo.config), everything else in the file is
// ignored. It returns DefaultAPIPort when the file has no such option, and
// when the file does not exist and mustExist is false (upstream's tools
// read /etc/bagpipe-bgp/bgp.conf only if it is there).
func ReadAPIPort(path string, mustExist bool) (int, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) && !mustExist {
			return DefaultAPIPort, nil
		}
		return 0, fmt.Errorf("cannot read the API port from %s: %w", path, err)
	}
	f, err := ini.LoadSources(ini.LoadOptions{
		Insensitive:             true,
		SkipUnrecognizableLines: true,
		IgnoreContinuation:      true,
	}, path)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %s to read [API] port (fix the file or give the port on the command line): %w", path, err)
	}
	sec, err := f.GetSection("api")
	if err != nil || !sec.HasKey("port") {
		return DefaultAPIPort, nil
	}
	v := strings.TrimSpace(sec.Key("port").String())
	port, err := strconv.Atoi(v)
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("[API] port %q in %s is not a TCP port number (1-65535): fix the file or give the port on the command line", v, path)
	}
	return port, nil
}
