package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// newFlagSet returns a flag set that prints nothing by itself: see
// reportFlagError.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// reportFlagError prints the outcome of a failed parse like optparse: the
// full help (head, then the options) on stdout for -h/--help, else the
// short usage and "<prog>: error: <msg>" on stderr. It returns err.
func reportFlagError(fs *flag.FlagSet, err error, head, short string, stdout, stderr io.Writer) error {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, head)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		return err
	}
	fmt.Fprintf(stderr, "%s%s: error: %v\n", short, fs.Name(), err)
	return err
}

// parseInterspersed parses args with fs like optparse does: options and
// positional arguments may be mixed, and "--" ends the options. It returns
// the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// listValue is a repeatable string option (optparse action="append").
type listValue struct{ dst *[]string }

func (v listValue) String() string {
	if v.dst == nil {
		return ""
	}
	return strings.Join(*v.dst, ",")
}
func (v listValue) Set(s string) error { *v.dst = append(*v.dst, s); return nil }

// choiceValue is a string option restricted to choices.
type choiceValue struct {
	dst     *string
	choices []string
}

func (v choiceValue) String() string {
	if v.dst == nil {
		return ""
	}
	return *v.dst
}

func (v choiceValue) Set(s string) error {
	if !slices.Contains(v.choices, s) {
		return fmt.Errorf("invalid choice: %q (choose from %s)", s, strings.Join(v.choices, ", "))
	}
	*v.dst = s
	return nil
}

// constValue is a flag without argument that stores a constant
// (optparse store_const / store_true / store_false).
type constValue[T any] struct {
	dst *T
	val T
}

func (v constValue[T]) String() string   { return "" }
func (v constValue[T]) IsBoolFlag() bool { return true }

func (v constValue[T]) Set(s string) error {
	on, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("takes no value (got %q)", s)
	}
	if on {
		*v.dst = v.val
	}
	return nil
}

// classifierValue records one traffic classifier option.
type classifierValue struct {
	c   *Classifier
	key string
}

func (v classifierValue) String() string { return "" }
func (v classifierValue) Set(s string) error {
	v.c.Set(v.key, s)
	return nil
}
