package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultLGPrefix is the looking glass's URL prefix.
const DefaultLGPrefix = "looking-glass"

// lgShortUsage is printed before a command-line error.
const lgShortUsage = "Usage: bagpipe-looking-glass [--server <ip>] [--port <port>] [--prefix <prefix>] [-r] path to object in looking-glass\n\n"

const lgUsage = `Usage: bagpipe-looking-glass [--server <ip>] [--port <port>] [--prefix <prefix>] [-r] path to object in looking-glass

e.g.: bagpipe-looking-glass vpns instances

Prints the looking glass of a running bagpipe-bgp as an indented tree.
Differences from upstream: the exit status is 1 after an error (upstream
exits 0), --config-file names the bgp.conf the default port is read from,
an href that cannot be fetched with -r prints " (ERROR <code>)" and the
tree goes on, error bodies are printed as text.

Options:
`

// LGOptions are bagpipe-looking-glass's options.
type LGOptions struct {
	Server     string
	Port       int
	Prefix     string
	Recurse    bool
	ConfigFile string
	// Path holds the path elements (positional arguments).
	Path []string
}

// ParseLGArgs parses bagpipe-looking-glass's command line (without the
// program name). For -h/--help it prints the usage on stdout and returns
// flag.ErrHelp; other errors have been reported on stderr.
func ParseLGArgs(args []string, stdout, stderr io.Writer) (*LGOptions, error) {
	o := &LGOptions{Server: "127.0.0.1", Prefix: DefaultLGPrefix, ConfigFile: DefaultConfigFile}
	fs := newFlagSet("bagpipe-looking-glass")
	fs.StringVar(&o.Server, "server", o.Server, "IP `address` of BaGPipe BGP")
	fs.IntVar(&o.Port, "port", 0, "`port` of BaGPipe BGP (default: [API] port of --config-file, else 8082)")
	fs.StringVar(&o.Prefix, "prefix", o.Prefix, "looking-glass URL `prefix`")
	fs.BoolVar(&o.Recurse, "r", false, "recurse down into the whole looking-glass below the path")
	fs.BoolVar(&o.Recurse, "recurse", false, "same as -r")
	fs.StringVar(&o.ConfigFile, "config-file", o.ConfigFile, "bagpipe-bgp configuration `file` to read [API] port from (used only if it exists, unless given explicitly)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, reportFlagError(fs, err, lgUsage, lgShortUsage, stdout, stderr)
	}
	o.Path = pos
	if o.Port == 0 {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config-file" })
		if o.Port, err = ReadAPIPort(o.ConfigFile, explicit); err != nil {
			fmt.Fprintf(stderr, "bagpipe-looking-glass: error: %v\n", err)
			return nil, err
		}
	}
	return o, nil
}

// pyQuote is Python's urllib.parse.quote(s) (safe "/"): every byte but
// letters, digits, "_.-~" and "/" percent-encoded.
func pyQuote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// LGURL is the URL upstream builds for path elements:
// http://server:port/prefix/<quoted elements joined by "/">.
func (o *LGOptions) LGURL() string {
	q := make([]string, len(o.Path))
	for i, p := range o.Path {
		q[i] = pyQuote(p)
	}
	return "http://" + net.JoinHostPort(o.Server, strconv.Itoa(o.Port)) + "/" + o.Prefix + "/" + strings.Join(q, "/")
}

// LookingGlassMain runs bagpipe-looking-glass with args (without the
// program name) and returns the exit status.
func LookingGlassMain(args []string, stdout, stderr io.Writer) int {
	o, err := ParseLGArgs(args, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	return RunLookingGlass(o, NewClient(o.Server, o.Port), w)
}

// RunLookingGlass fetches the path of o with c and prints it on w as
// upstream does, including its error messages; it returns 0 or 1.
func RunLookingGlass(o *LGOptions, c *Client, w io.Writer) int {
	fetch := func(u string) (any, error) {
		b, err := c.Get(context.Background(), u)
		if err != nil {
			return nil, err
		}
		v, err := DecodeOrdered(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		return v, nil
	}
	target := o.LGURL()
	data, err := fetch(target)
	if err == nil {
		if obj, ok := data.(*Object); ok {
			if href, ok := obj.Get("href"); ok {
				var bis any
				if bis, err = fetch(PyStr(href)); err == nil {
					target, data = PyStr(href), bis
				}
			}
		}
	}
	if err == nil {
		p := &LGPrinter{W: w, Recurse: o.Recurse, Fetch: fetch}
		p.Print(data, target)
		return 0
	}
	var he *HTTPError
	var ue *url.Error
	switch {
	case errors.As(err, &he) && he.Code == 404:
		q := make([]string, len(o.Path))
		for i, p := range o.Path {
			q[i] = pyQuote(p)
		}
		fmt.Fprintf(w, "No such looking glass path: %s\n(%s)\n", strings.Join(q, " "), target)
	case errors.As(err, &he):
		fmt.Fprintf(w, "Error code %d: %s\n", he.Code, he.Body)
	case errors.As(err, &ue):
		fmt.Fprintf(w, "No server at http://%s : %v\n", net.JoinHostPort(o.Server, strconv.Itoa(o.Port)), ue.Err)
	default:
		fmt.Fprintf(w, "Error: %v\n", err)
	}
	return 1
}
