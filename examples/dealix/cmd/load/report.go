package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"
)

// opStats accumulates one operation's samples.
type opStats struct {
	latencies []time.Duration
	statuses  map[int]int
	transport map[string]int
	replayed  int
}

// recorder collects samples from every worker.
type recorder struct {
	mu   sync.Mutex
	ops  map[string]*opStats
	cuts int
}

func newRecorder() *recorder { return &recorder{ops: map[string]*opStats{}} }

func (rc *recorder) add(op string, status int, lat time.Duration, _ time.Time, replayed bool, err error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	s := rc.ops[op]
	if s == nil {
		s = &opStats{statuses: map[int]int{}, transport: map[string]int{}}
		rc.ops[op] = s
	}
	s.latencies = append(s.latencies, lat)
	if err != nil {
		s.transport[transportKind(err)]++
		return
	}
	s.statuses[status]++
	if replayed {
		s.replayed++
	}
}

// cut counts a request the end of the run interrupted.
func (rc *recorder) cut() {
	rc.mu.Lock()
	rc.cuts++
	rc.mu.Unlock()
}

// transportKind names a transport failure coarsely, so the report's keys
// stay few.
func transportKind(err error) string {
	type timeout interface{ Timeout() bool }
	if t, ok := err.(timeout); ok && t.Timeout() {
		return "timeout"
	}
	return "connection"
}

// Report is a run's outcome; its JSON is the tool's -json output.
type Report struct {
	Label       string    `json:"label,omitempty"`
	Target      string    `json:"target"`
	Mode        string    `json:"mode"`
	Rate        float64   `json:"target_rate,omitempty"`
	Concurrency int       `json:"concurrency"`
	Mix         string    `json:"mix"`
	Tenants     int       `json:"tenants"`
	Credentials int       `json:"credentials"`
	Budget      int       `json:"max_requests"`
	Prefill     int       `json:"prefill_per_tenant,omitempty"`
	Seconds     float64   `json:"seconds"`
	Requests    int       `json:"requests"`
	RPS         float64   `json:"requests_per_second"`
	Errors      int       `json:"errors"`
	Cut         int       `json:"cut_by_end_of_run"`
	Ops         []OpStats `json:"operations"`
	Notes       []string  `json:"notes,omitempty"`
	Machine     Machine   `json:"machine"`
	// Bare and Ratio are set by a comparison run: the same creates
	// through the bare handler, and full-stack creates/s over bare ones.
	Bare   *Report `json:"bare,omitempty"`
	Rounds int     `json:"rounds,omitempty"`
	Ratio  float64 `json:"create_rps_ratio_full_over_bare,omitempty"`
}

// OpStats is one operation's row. Latencies are in milliseconds. Errors
// counts answers outside 2xx plus transport failures.
type OpStats struct {
	Op        string         `json:"op"`
	Count     int            `json:"count"`
	RPS       float64        `json:"requests_per_second"`
	P50       float64        `json:"p50_ms"`
	P95       float64        `json:"p95_ms"`
	P99       float64        `json:"p99_ms"`
	Max       float64        `json:"max_ms"`
	Statuses  map[string]int `json:"statuses"`
	Errors    int            `json:"errors"`
	Transport map[string]int `json:"transport_errors,omitempty"`
	Replayed  int            `json:"replayed,omitempty"`

	sorted []time.Duration // for the chart
}

// Machine is where the run happened.
type Machine struct {
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
	CPUs   int    `json:"cpus"`
	Go     string `json:"go"`
}

func machine() Machine {
	return Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version()}
}

// quantile is the nearest-rank quantile of sorted latencies.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (rc *recorder) report(elapsed time.Duration) *Report {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rep := &Report{Seconds: elapsed.Seconds(), Cut: rc.cuts}
	for _, op := range opOrder {
		s := rc.ops[op]
		if s == nil {
			continue
		}
		sorted := slices.Clone(s.latencies)
		slices.Sort(sorted)
		row := OpStats{
			Op: op, Count: len(sorted), RPS: float64(len(sorted)) / elapsed.Seconds(),
			P50: ms(quantile(sorted, 0.50)), P95: ms(quantile(sorted, 0.95)), P99: ms(quantile(sorted, 0.99)),
			Max: ms(sorted[len(sorted)-1]), Statuses: map[string]int{}, Replayed: s.replayed, sorted: sorted,
		}
		for code, n := range s.statuses {
			row.Statuses[strconv.Itoa(code)] = n
			if code < 200 || code > 299 {
				row.Errors += n
			}
		}
		if len(s.transport) > 0 {
			row.Transport = map[string]int{}
			for k, n := range s.transport {
				row.Transport[k] = n
				row.Errors += n
			}
		}
		rep.Ops = append(rep.Ops, row)
		rep.Requests += row.Count
		rep.Errors += row.Errors
	}
	rep.RPS = float64(rep.Requests) / elapsed.Seconds()
	return rep
}

// merge adds b's figures to a (nil: b itself): seconds and counts add,
// percentiles are computed again over both runs' samples.
func merge(a, b *Report) *Report {
	if a == nil {
		return b
	}
	out := *a
	out.Seconds += b.Seconds
	out.Cut += b.Cut
	out.Notes = append(slices.Clone(a.Notes), b.Notes...)
	slices.Sort(out.Notes)
	out.Notes = slices.Compact(out.Notes)
	rows := map[string]*OpStats{}
	for _, r := range []*Report{a, b} {
		for _, o := range r.Ops {
			m := rows[o.Op]
			if m == nil {
				m = &OpStats{Op: o.Op, Statuses: map[string]int{}}
				rows[o.Op] = m
			}
			m.sorted = append(m.sorted, o.sorted...)
			m.Replayed += o.Replayed
			m.Errors += o.Errors
			for k, n := range o.Statuses {
				m.Statuses[k] += n
			}
			for k, n := range o.Transport {
				if m.Transport == nil {
					m.Transport = map[string]int{}
				}
				m.Transport[k] += n
			}
		}
	}
	out.Ops, out.Requests, out.Errors = nil, 0, 0
	for _, op := range opOrder {
		m := rows[op]
		if m == nil {
			continue
		}
		slices.Sort(m.sorted)
		m.Count = len(m.sorted)
		m.RPS = float64(m.Count) / out.Seconds
		m.P50, m.P95, m.P99 = ms(quantile(m.sorted, 0.50)), ms(quantile(m.sorted, 0.95)), ms(quantile(m.sorted, 0.99))
		m.Max = ms(m.sorted[len(m.sorted)-1])
		out.Ops = append(out.Ops, *m)
		out.Requests += m.Count
		out.Errors += m.Errors
	}
	out.RPS = float64(out.Requests) / out.Seconds
	return &out
}

// Op returns the row of op, or nil.
func (r *Report) Op(op string) *OpStats {
	for i := range r.Ops {
		if r.Ops[i].Op == op {
			return &r.Ops[i]
		}
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as a plain-text table.
func (r *Report) WriteTable(w io.Writer) error {
	if err := r.writeTable(w); err != nil {
		return err
	}
	if r.Bare != nil {
		fmt.Fprintln(w)
		if err := r.Bare.writeTable(w); err != nil {
			return err
		}
		fmt.Fprintf(w, "\ncreate: full stack %.0f req/s, bare handler %.0f req/s, ratio %.2f (%d alternating rounds)\n",
			r.Op(OpCreate).rps(), r.Bare.Op(OpCreate).rps(), r.Ratio, max(r.Rounds, 1))
	}
	return nil
}

func (o *OpStats) rps() float64 {
	if o == nil {
		return 0
	}
	return o.RPS
}

func (r *Report) writeTable(w io.Writer) error {
	label := r.Label
	if label == "" {
		label = "run"
	}
	fmt.Fprintf(w, "%s: %s, %s, concurrency %d", label, r.Target, r.Mode, r.Concurrency)
	if r.Rate > 0 {
		fmt.Fprintf(w, ", target %.0f req/s", r.Rate)
	}
	fmt.Fprintf(w, "\n%d requests in %.1f s (%.0f req/s), %d errors, %d tenants, %d credentials, %d CPUs (%s/%s)\n",
		r.Requests, r.Seconds, r.RPS, r.Errors, r.Tenants, r.Credentials, r.Machine.CPUs, r.Machine.GOOS, r.Machine.GOARCH)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tcount\treq/s\tp50 ms\tp95 ms\tp99 ms\tmax ms\terrors\tstatuses\t")
	for _, o := range r.Ops {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%s\t\n",
			o.Op, o.Count, o.RPS, o.P50, o.P95, o.P99, o.Max, o.Errors, o.statusText())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

func (o OpStats) statusText() string {
	keys := make([]string, 0, len(o.Statuses)+len(o.Transport))
	for k := range o.Statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := ""
	for _, k := range keys {
		out += fmt.Sprintf("%s:%d ", k, o.Statuses[k])
	}
	for k, n := range o.Transport {
		out += fmt.Sprintf("%s:%d ", k, n)
	}
	if o.Replayed > 0 {
		out += fmt.Sprintf("(replayed %d)", o.Replayed)
	}
	return out
}
