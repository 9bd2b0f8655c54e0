package pgboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
)

// Source says where a Server came from.
type Source string

// The three sources, in the order Start tries them.
const (
	SourceURL    Source = "url"
	SourceDocker Source = "docker"
	SourceLocal  Source = "local"
)

// DefaultImage is the Docker image used when Options.Image is empty: the
// official image a user's machine would pull.
const DefaultImage = "postgres:16-alpine"

// ErrNoServer is wrapped by Start's error when no source worked: no URL, no
// reachable Docker engine, no PostgreSQL binaries. The message names the
// three options and why the last two were not available.
var ErrNoServer = errors.New("no PostgreSQL server")

// EnvNames names the environment variables a caller reads its Options
// from. Start quotes them in its messages, so the user learns what to set.
type EnvNames struct {
	URL    string // a superuser URL of an existing server
	Image  string // the Docker image
	Pull   string // "true" allows pulling a missing image
	BinDir string // the directory holding initdb and postgres
}

// ServerEnv are the reference server's variables; they are also what
// messages quote when Options.Env is left empty.
var ServerEnv = EnvNames{
	URL:    "DATABASE_URL",
	Image:  "DEALIX_POSTGRES_IMAGE",
	Pull:   "DEALIX_PULL_IMAGE",
	BinDir: "DEALIX_POSTGRES_BIN",
}

// Options reads the variables n names from the environment: URL, Image,
// AllowPull (the pull variable equal to "true", any case) and BinDir, and
// sets Env to n. The caller fills in the rest (DataDir, Logger, …).
func (n EnvNames) Options() Options {
	get := func(name string) string {
		if name == "" {
			return ""
		}
		return os.Getenv(name)
	}
	return Options{
		URL:       get(n.URL),
		Image:     get(n.Image),
		AllowPull: strings.EqualFold(get(n.Pull), "true"),
		BinDir:    get(n.BinDir),
		Env:       n,
	}
}

// Options says how Start finds or starts a server. The zero value tries
// Docker with DefaultImage, then a temporary local cluster.
type Options struct {
	// URL, when set, is used as is: no container, no cluster.
	URL string
	// Image is the Docker image; "" means DefaultImage.
	Image string
	// AllowPull lets the engine pull a missing image. Without it a missing
	// image is an error that says how to get one.
	AllowPull bool
	// DataDir is the local cluster's directory. "" makes a fresh temporary
	// one that Close removes (tests); a server passes a persistent one such
	// as DefaultDataDir(), kept by Close so a restart keeps its data.
	DataDir string
	// Reset wipes DataDir before the cluster starts. Only a directory this
	// package made (or an empty one) is wiped; anything else is refused.
	Reset bool
	// BinDir, when set, is the only directory searched for initdb and
	// postgres (PATH and /usr/lib/postgresql are not).
	BinDir string
	// Port, when not 0, is the port on 127.0.0.1 the server listens on:
	// the container's published port or the cluster's. A fixed port lets
	// clients reconnect to the same URL after Restart. 0 lets the container
	// publish an ephemeral port, and the cluster reuse its last port when
	// free or else take a free one.
	Port int
	// Settings are server settings (postgres -c name=value) for the
	// container or the cluster, applied at every start.
	Settings map[string]string
	// ContainerLabels label the container, e.g. dealix.pgtest=true, so
	// left-over containers can be found.
	ContainerLabels map[string]string
	// Env names the caller's environment variables, for messages; empty
	// fields are read from ServerEnv.
	Env EnvNames
	// Logger receives a line for each step (may be nil).
	Logger *slog.Logger
}

func (o *Options) names() EnvNames {
	n := o.Env
	if n.URL == "" {
		n.URL = ServerEnv.URL
	}
	if n.Image == "" {
		n.Image = ServerEnv.Image
	}
	if n.Pull == "" {
		n.Pull = ServerEnv.Pull
	}
	if n.BinDir == "" {
		n.BinDir = ServerEnv.BinDir
	}
	return n
}

func (o *Options) log(msg string, args ...any) {
	if o.Logger != nil {
		o.Logger.Info("pgboot: "+msg, args...)
	}
}

// Server is a PostgreSQL server found or started by Start.
type Server struct {
	// AdminURL is a superuser URL of the server (database "postgres").
	AdminURL string
	// Source says where the server came from.
	Source Source
	// ContainerID is the container's id (SourceDocker only).
	ContainerID string
	// DataDir is the cluster's directory (SourceLocal only).
	DataDir string

	container *postgres.PostgresContainer
	local     *cluster
}

// Start returns a server from the first source that works, in the order the
// package documentation gives. It returns an error wrapping ErrNoServer
// when none is available, and the source's own error when an available
// one fails. Close the server when done.
func Start(ctx context.Context, opts Options) (*Server, error) {
	names := opts.names()
	if opts.URL != "" {
		if _, err := pgx.ParseConfig(opts.URL); err != nil {
			return nil, fmt.Errorf("%s: %w", names.URL, err)
		}
		opts.log("using the server named by "+names.URL, "url", Redact(opts.URL))
		return &Server{AdminURL: opts.URL, Source: SourceURL}, nil
	}

	dockerErr := dockerReachable(ctx)
	if dockerErr == nil {
		opts.log("starting PostgreSQL in Docker", "image", opts.image())
		return startDocker(ctx, &opts)
	}
	opts.log("no Docker engine", "reason", dockerErr.Error())

	bins, binErr := findBinaries(opts.BinDir)
	if binErr == nil {
		return startLocal(ctx, &opts, bins)
	}
	binHelp := "on PATH or in /usr/lib/postgresql/<version>/bin"
	if opts.BinDir != "" {
		binHelp = "in " + opts.BinDir + ", the directory " + names.BinDir + " names"
	}
	return nil, fmt.Errorf("%w: set %s to the URL of an existing server, make a Docker engine reachable (%v), "+
		"or install PostgreSQL's binaries, initdb and postgres, %s (%v)",
		ErrNoServer, names.URL, dockerErr, binHelp, binErr)
}

// Restart stops the server and starts it again on the same port, keeping
// its data; clients reconnect to the same AdminURL. A server named by a
// URL is not this package's to restart.
func (s *Server) Restart(ctx context.Context) error {
	switch s.Source {
	case SourceDocker:
		return s.restartDocker(ctx)
	case SourceLocal:
		return s.local.restart(ctx)
	default:
		return errors.New("pgboot: a server named by a URL cannot be restarted")
	}
}

// Close stops what Start started: it removes the container, or stops the
// cluster (a fast shutdown: clients are disconnected, a checkpoint is
// written) and removes its directory when it was temporary. A server named
// by a URL is left alone.
func (s *Server) Close(ctx context.Context) error {
	switch s.Source {
	case SourceDocker:
		return s.closeDocker(ctx)
	case SourceLocal:
		return s.local.close(ctx)
	default:
		return nil
	}
}

// Redact is connURL with its password hidden, for messages.
func Redact(connURL string) string {
	u, err := url.Parse(connURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
