package gates

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// ErrInvalidFile is returned by Load and Parse for a gate file that cannot
// be read as a set; the error names the line and column.
var ErrInvalidFile = errors.New("gates: invalid gate file")

// FileError locates a problem in a gate file.
type FileError struct {
	// File is the file's name, as given to Load or Parse.
	File string
	// Line and Column are 1-based.
	Line, Column int
	// Msg says what is wrong.
	Msg string
}

// Error implements error as "file:line:column: msg".
func (e *FileError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Unwrap makes errors.Is(err, ErrInvalidFile) hold.
func (e *FileError) Unwrap() error { return ErrInvalidFile }

// fileSet is a gate file's shape.
type fileSet struct {
	Name    string            `json:"name"`
	Verdict string            `json:"verdict"`
	Rule    Rule              `json:"rule"`
	Timeout string            `json:"timeout"`
	Gates   []json.RawMessage `json:"gates"`
}

type fileGate struct {
	Gate
	Timeout string    `json:"timeout"`
	Check   fileCheck `json:"check"`
}

// fileCheck holds every kind's fields; Kind says which apply.
type fileCheck struct {
	Kind string `json:"kind"`
	// file
	Path     string   `json:"path"`
	NonEmpty bool     `json:"non_empty"`
	Headings []string `json:"headings"`
	Contains []string `json:"contains"`
	// go_package; command
	Dir     string   `json:"dir"`
	Symbols []string `json:"symbols"`
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	// http; sql
	Method         string            `json:"method"`
	URL            string            `json:"url"`
	RequestHeaders map[string]string `json:"request_headers"`
	Body           string            `json:"body"`
	Status         int               `json:"status"`
	Headers        map[string]string `json:"headers"`
	JSON           map[string]string `json:"json"`
	Budget         string            `json:"budget"`
	URLEnv         string            `json:"url_env"`
	Query          string            `json:"query"`
	WantRows       *int              `json:"want_rows"`
	// blocked
	Reason string `json:"reason"`
}

// Load reads a gate file. vars fill ${NAME} placeholders in its strings;
// a name not in vars is read from the environment.
func Load(path string, vars map[string]string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, vars)
}

// Parse reads a gate file's content; name labels its errors.
func Parse(name string, data []byte, vars map[string]string) (*Set, error) {
	var fs fileSet
	if err := strictDecode(data, &fs); err != nil {
		return nil, decodeError(name, data, 0, err)
	}
	set := &Set{Name: fs.Name, Verdict: fs.Verdict, Rule: fs.Rule}
	var err error
	if set.Timeout, err = optionalDuration(fs.Timeout); err != nil {
		return nil, locate(name, data, 0, "timeout: %v", err)
	}
	from := 0
	for _, raw := range fs.Gates {
		at := from + bytes.Index(data[from:], raw)
		from = at + len(raw)
		g, err := parseGate(raw, vars)
		if err != nil {
			return nil, decodeError(name, data, at, err)
		}
		set.Gates = append(set.Gates, g)
	}
	if err := set.Validate(); err != nil {
		return nil, locate(name, data, 0, "%v", err)
	}
	return set, nil
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return offsetError{err: err, offset: dec.InputOffset()}
	}
	if dec.More() {
		return offsetError{err: errors.New("content after the set"), offset: dec.InputOffset()}
	}
	return nil
}

// offsetError is a decoding error with the offset it was met at.
type offsetError struct {
	err    error
	offset int64
}

func (e offsetError) Error() string { return e.err.Error() }

func parseGate(raw []byte, vars map[string]string) (Gate, error) {
	raw, err := expand(raw, vars)
	if err != nil {
		return Gate{}, err
	}
	var fg fileGate
	if err := strictDecode(raw, &fg); err != nil {
		return Gate{}, err
	}
	g := fg.Gate
	if g.Timeout, err = optionalDuration(fg.Timeout); err != nil {
		return Gate{}, fmt.Errorf("gate %s: timeout: %w", g.ID, err)
	}
	if g.Check, err = fg.Check.build(); err != nil {
		return Gate{}, fmt.Errorf("gate %s: %w", g.ID, err)
	}
	return g, nil
}

func (c fileCheck) build() (Check, error) {
	switch c.Kind {
	case "file":
		return FileCheck{Path: c.Path, NonEmpty: c.NonEmpty, Headings: c.Headings, Contains: c.Contains}, nil
	case "go_package":
		return GoPackageCheck{Dir: c.Dir, Symbols: c.Symbols}, nil
	case "command":
		return CommandCheck{Args: c.Args, Dir: c.Dir, Env: c.Env}, nil
	case "http":
		budget, err := optionalDuration(c.Budget)
		if err != nil {
			return nil, fmt.Errorf("budget: %w", err)
		}
		return HTTPCheck{Method: c.Method, URL: c.URL, Request: c.RequestHeaders, Body: c.Body,
			Status: c.Status, Headers: c.Headers, JSON: c.JSON, Budget: budget}, nil
	case "sql":
		url := c.URL
		if c.URLEnv != "" {
			url = os.Getenv(c.URLEnv)
		}
		return SQLCheck{URL: url, Query: c.Query, WantRows: c.WantRows}, nil
	case "blocked":
		if c.Reason == "" {
			return nil, errors.New("a blocked gate needs its reason")
		}
		return BlockedCheck{Reason: c.Reason}, nil
	case "":
		return nil, errors.New("check has no kind")
	}
	return nil, fmt.Errorf("unknown check kind %q (file, go_package, command, http, sql, blocked)", c.Kind)
}

var placeholder = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand fills ${NAME} from vars, else the environment; a name found in
// neither is an error rather than an empty string.
func expand(raw []byte, vars map[string]string) ([]byte, error) {
	var missing string
	out := placeholder.ReplaceAllFunc(raw, func(m []byte) []byte {
		name := string(m[2 : len(m)-1])
		v, ok := vars[name]
		if !ok {
			v, ok = os.LookupEnv(name)
		}
		if !ok {
			missing = name
			return m
		}
		text, _ := json.Marshal(v)
		return text[1 : len(text)-1] // the value, escaped for a JSON string
	})
	if missing != "" {
		return nil, fmt.Errorf("${%s} is not set", missing)
	}
	return out, nil
}

func optionalDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = errors.New("negative")
	}
	return d, err
}

// decodeError locates err, met in the value starting at base.
func decodeError(name string, data []byte, base int, err error) error {
	offset := base
	var oe offsetError
	if errors.As(err, &oe) {
		offset, err = base+int(oe.offset), oe.err
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			offset = base + int(syn.Offset) - 1 // Offset is just past the bad byte
		case errors.As(err, &typ):
			offset = base + int(typ.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			offset = len(data)
		default:
			offset = fieldOffset(data, base, offset, err)
		}
	}
	return locate(name, data, offset, "%v", err)
}

// fieldOffset finds the key an "unknown field" error names, searching
// from base; other errors keep offset.
func fieldOffset(data []byte, base, offset int, err error) int {
	field, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	if !ok {
		return offset
	}
	if i := bytes.Index(data[base:], []byte(field)); i >= 0 {
		return base + i
	}
	return offset
}

func locate(name string, data []byte, offset int, format string, args ...any) error {
	offset = min(max(offset, 0), len(data))
	line, col := 1, 1
	for _, c := range data[:offset] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &FileError{File: name, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}
