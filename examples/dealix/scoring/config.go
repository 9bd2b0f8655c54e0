package scoring

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/dealix/platform/internal/errs"
)

// ErrInvalidConfig reports a bad configuration value. It is the library's
// shared value: the same in every package.
var ErrInvalidConfig = errs.ErrInvalidConfig

// Environment variables ConfigFromEnv reads.
const (
	EnvAlertUSD = "DEALIX_COST_ALERT_USD" // daily spend per tenant above which an alert is posted
	EnvAlertURL = "DEALIX_COST_ALERT_URL" // where alerts are posted (Slack-compatible); unset: none
	EnvPrices   = "DEALIX_MODEL_PRICES"   // model=in[/out],… in USD per 1,000 tokens
)

// DefaultAlertUSD is the default daily alert threshold, in US dollars.
const DefaultAlertUSD = "10"

// Price is what a model costs, in US dollars per 1,000 tokens, as decimal
// strings (so the ledger's sums are exact): "0.5", "0.0025".
type Price struct {
	In  string
	Out string
}

// DefaultPrices prices the default model, Fake, like a small commercial
// model.
var DefaultPrices = map[string]Price{FakeModelName: {In: "0.5", Out: "1.5"}}

// Config configures a Service.
type Config struct {
	// Model scores the leads. Default Fake{}.
	Model Model
	// Prices maps a model's name to its price. The Model's name must be
	// in it. Default DefaultPrices.
	Prices map[string]Price
	// AlertUSD is the daily spend of one tenant, a decimal in US dollars,
	// above which one alert is posted for the day. Default DefaultAlertUSD.
	AlertUSD string
	// AlertURL receives the alerts as Slack-compatible JSON
	// ({"text": …}). Empty: alerts are recorded, never posted.
	AlertURL string
	// HTTPClient posts the alerts. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Logger receives failures. Default slog.Default().
	Logger *slog.Logger
}

var decimal = regexp.MustCompile(`^[0-9]{1,9}(\.[0-9]{1,8})?$`)

func (c Config) withDefaults() (Config, error) {
	if c.Model == nil {
		c.Model = Fake{}
	}
	if c.Prices == nil {
		c.Prices = DefaultPrices
	}
	if c.AlertUSD == "" {
		c.AlertUSD = DefaultAlertUSD
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	name := c.Model.Name()
	if name == "" || len(name) > 128 {
		return c, errs.Config("scoring", "model name %q must have 1 to 128 characters", name)
	}
	if _, ok := c.Prices[name]; !ok {
		return c, errs.Config("scoring", "no price for the model %q", name)
	}
	for m, p := range c.Prices {
		if !decimal.MatchString(p.In) || !decimal.MatchString(p.Out) {
			return c, errs.Config("scoring", "price of %q: %q/%q are not decimals such as 0.5", m, p.In, p.Out)
		}
	}
	if !decimal.MatchString(c.AlertUSD) {
		return c, errs.Config("scoring", "%s: %q is not an amount such as 10 or 2.50", EnvAlertUSD, c.AlertUSD)
	}
	if c.AlertURL != "" {
		if u, err := url.Parse(c.AlertURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, errs.Config("scoring", "%s: %q is not an http(s) URL", EnvAlertURL, c.AlertURL)
		}
	}
	return c, nil
}

// ConfigFromEnv reads the alert threshold, the alert URL and the prices
// from getenv (os.Getenv):
//
//	DEALIX_COST_ALERT_USD  default 10
//	DEALIX_COST_ALERT_URL  unset: no alert is posted
//	DEALIX_MODEL_PRICES    e.g. "fake-scorer-v1=0.5/1.5,other=2" (USD per
//	                       1,000 tokens in/out; one value prices both);
//	                       merged over DefaultPrices
//
// A bad value is reported with its variable's name, wrapping
// ErrInvalidConfig.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{AlertUSD: strings.TrimSpace(getenv(EnvAlertUSD)), AlertURL: strings.TrimSpace(getenv(EnvAlertURL))}
	prices, err := ParsePrices(getenv(EnvPrices))
	if err != nil {
		return c, err
	}
	c.Prices = map[string]Price{}
	for m, p := range DefaultPrices {
		c.Prices[m] = p
	}
	for m, p := range prices {
		c.Prices[m] = p
	}
	_, err = c.withDefaults()
	return c, err
}

// ParsePrices reads a price list: comma-separated model=in[/out] entries,
// amounts in US dollars per 1,000 tokens. An empty string is no entry.
func ParsePrices(s string) (map[string]Price, error) {
	out := map[string]Price{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		model, amounts, ok := strings.Cut(entry, "=")
		model = strings.TrimSpace(model)
		in, outPrice, two := strings.Cut(amounts, "/")
		if !two {
			outPrice = in
		}
		p := Price{In: strings.TrimSpace(in), Out: strings.TrimSpace(outPrice)}
		if !ok || model == "" || len(model) > 128 || !decimal.MatchString(p.In) || !decimal.MatchString(p.Out) {
			return nil, fmt.Errorf("%w: %s: %q is not model=in[/out] with decimal amounts such as 0.5/1.5", ErrInvalidConfig, EnvPrices, entry)
		}
		if _, dup := out[model]; dup {
			return nil, fmt.Errorf("%w: %s: %q is priced twice", ErrInvalidConfig, EnvPrices, model)
		}
		out[model] = p
	}
	return out, nil
}

var errAlreadyRecorded = errors.New("scoring: the call is already in the ledger")
