package pgboot

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
)

// DockerStartTimeout bounds how long Start waits for a container to be
// ready (an image pull, when allowed, included).
const DockerStartTimeout = 2 * time.Minute

func (o *Options) image() string {
	if o.Image != "" {
		return o.Image
	}
	return DefaultImage
}

// quietTestcontainers silences testcontainers' global logger once: it is
// a package variable, and servers started side by side (a test binary's
// shared server and a restartable one) must not both write it.
var quietTestcontainers sync.Once

// dockerReachable says whether a Docker engine answers, without starting
// anything: an explicit DOCKER_HOST must answer itself, otherwise
// testcontainers' own discovery must find an engine that answers.
func dockerReachable(ctx context.Context) (err error) {
	// testcontainers panics in some set-ups without a Docker engine; that
	// is the same answer as an error here: no engine.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("looking for a Docker engine panicked: %v", r)
		}
	}()
	quietTestcontainers.Do(func() { tclog.SetDefault(tclog.NewNoopLogger()) })
	if err := checkDockerHost(ctx); err != nil {
		return err
	}
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("no engine found: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := provider.Health(ctx); err != nil { // closes the provider
		return fmt.Errorf("the engine does not answer: %w", err)
	}
	return nil
}

// checkDockerHost makes an explicit DOCKER_HOST authoritative: when it is
// set and nothing answers there, that is the answer, instead of letting
// discovery fall back to another engine the user did not choose.
func checkDockerHost(ctx context.Context) error {
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		return nil
	}
	u, err := url.Parse(host)
	if err != nil {
		return fmt.Errorf("DOCKER_HOST %q: %w", host, err)
	}
	network, address := "tcp", u.Host
	if u.Scheme == "unix" {
		network, address = "unix", u.Path
	}
	dialCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dialCtx, network, address)
	if err != nil {
		return fmt.Errorf("DOCKER_HOST %s does not answer: %w", host, err)
	}
	return conn.Close()
}

// startDocker starts the container. On failure a container that was
// created is removed again.
func startDocker(ctx context.Context, opts *Options) (s *Server, err error) {
	s = &Server{Source: SourceDocker}
	if err := s.runContainer(ctx, opts); err != nil {
		if s.container != nil {
			_ = s.closeDocker(context.Background())
		}
		return nil, err
	}
	return s, nil
}

func (s *Server) runContainer(ctx context.Context, opts *Options) (err error) {
	ctx, cancel := context.WithTimeout(ctx, DockerStartTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("starting a container panicked: %v", r)
		}
	}()
	image := opts.image()
	if !opts.AllowPull {
		if err := checkImagePresent(ctx, image, opts.names()); err != nil {
			return err
		}
	}
	customizers := []testcontainers.ContainerCustomizer{
		postgres.WithUsername("postgres"),
		postgres.WithPassword("postgres"),
		postgres.WithDatabase("postgres"),
		postgres.BasicWaitStrategies(),
	}
	if len(opts.ContainerLabels) > 0 {
		customizers = append(customizers, testcontainers.WithLabels(opts.ContainerLabels))
	}
	if args := settingArgs(opts.Settings); len(args) > 0 {
		customizers = append(customizers, testcontainers.WithCmdArgs(args...))
	}
	if opts.Port != 0 {
		port := strconv.Itoa(opts.Port)
		customizers = append(customizers, testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{
				network.MustParsePort("5432/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: port}},
			}
		}))
	}
	c, err := postgres.Run(ctx, image, customizers...)
	if c != nil {
		s.container = c
		s.ContainerID = c.GetContainerID()
	}
	if err != nil {
		return fmt.Errorf("image %s: %w", image, err)
	}
	s.AdminURL, err = c.ConnectionString(ctx, "sslmode=disable")
	return err
}

// settingArgs turns settings into postgres flags, in a stable order.
func settingArgs(settings map[string]string) []string {
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	return args
}

// checkImagePresent refuses to go on with an image the engine does not
// have: pulling needs the caller's consent.
func checkImagePresent(ctx context.Context, image string, names EnvNames) error {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, image); err != nil {
		return fmt.Errorf("image %s is not on this Docker engine (%v): pull it with 'docker pull %s', set %s=true to let it be pulled, "+
			"or build a local one with scripts/build-postgres-image.sh and name it in %s", image, err, image, names.Pull, names.Image)
	}
	return nil
}

// restartDocker stops and starts the container and waits until the server
// accepts connections again.
func (s *Server) restartDocker(ctx context.Context) error {
	// A fast shutdown (what the official image's STOPSIGNAL SIGINT does):
	// clients are disconnected and the server writes a checkpoint, so
	// committed data survives. Docker's default SIGTERM would wait for the
	// pools' idle connections to leave.
	// -W: do not wait, since the container ends with its server and would
	// take the waiting pg_ctl with it.
	code, _, err := s.container.Exec(ctx, []string{"pg_ctl", "stop", "-W", "-m", "fast", "-D", "/var/lib/postgresql/data"}, tcexec.WithUser("postgres"))
	if err != nil || code != 0 {
		return fmt.Errorf("pgboot: stop server: exit %d: %v", code, err)
	}
	if err := s.waitContainerStopped(ctx); err != nil {
		return err
	}
	if err := s.container.Start(ctx); err != nil {
		return fmt.Errorf("pgboot: start server: %w", err)
	}
	// The container's log still holds the first start's "ready" lines, so
	// the wait strategy cannot tell; ask the server itself.
	return waitReady(ctx, s.AdminURL, nil, nil)
}

func (s *Server) waitContainerStopped(ctx context.Context) error {
	for {
		state, err := s.container.State(ctx)
		if err != nil {
			return fmt.Errorf("pgboot: container state: %w", err)
		}
		if !state.Running {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgboot: server did not stop: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) closeDocker(ctx context.Context) error {
	if s.container == nil {
		return nil
	}
	return testcontainers.TerminateContainer(s.container, testcontainers.StopContext(ctx))
}
