package bench

import "slices"

// median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none. xs is left as it was.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// point is the median of ys at x, with their spread (lowest and highest).
func point(x float64, ys []float64) Point {
	return Point{X: x, Y: median(ys), Lo: slices.Min(ys), Hi: slices.Max(ys)}
}
