package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// NewCommand returns the `run` command: it runs the pipeline described by
// KPIPE_PIPELINE_SPEC (or --config) until SIGTERM or SIGINT. A custom image registers its
// handlers with Register and adds this command to its own main:
//
//	func main() {
//		runtime.Register("enrich", enricher{})
//		cmd := runtime.NewCommand()
//		if err := cmd.Execute(); err != nil {
//			os.Exit(1)
//		}
//	}
//
// The pods the operator renders run the image with the argument `run`; a root command
// of the custom image with `run` as a subcommand (or `Use: "run"` handling its own args)
// both work.
func NewCommand() *cobra.Command {
	var (
		configPath      string
		httpAddr        = envOr(kpipev1.EnvHTTPAddr, ":"+strconv.Itoa(kpipev1.HTTPPort))
		shutdownTimeout = 25 * time.Second
		logLevel        = slog.LevelInfo
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a pipeline (inside a pipeline pod)",
		Long: "Run the pipeline whose KafkaPipeline spec is the JSON in " + kpipev1.EnvPipelineSpec +
			" (or the file given by --config), with Secret files from " + kpipev1.EnvTLSDir + " (default " +
			kpipev1.TLSMountPath + ") and " + kpipev1.EnvSASLDir + " (default " + kpipev1.SASLMountPath + ").",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: logLevel}))
			return runCommand(cmd.Context(), log, configPath, httpAddr, shutdownTimeout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "file holding the KafkaPipeline spec as JSON (default: the "+kpipev1.EnvPipelineSpec+" env var)")
	f.StringVar(&httpAddr, "http-address", httpAddr, "address of /metrics, /healthz and /readyz (env "+kpipev1.EnvHTTPAddr+")")
	f.DurationVar(&shutdownTimeout, "shutdown-timeout", shutdownTimeout, "how long to finish messages in flight after SIGTERM; keep it below the pod's terminationGracePeriodSeconds")
	f.TextVar(&logLevel, "log-level", &logLevel, "log level: debug, info, warn or error")
	return cmd
}

// ReadSpec returns the spec JSON from the file at path, or from KPIPE_PIPELINE_SPEC when
// path is empty.
func ReadSpec(path string) ([]byte, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		return b, nil
	}
	if v := os.Getenv(kpipev1.EnvPipelineSpec); v != "" {
		return []byte(v), nil
	}
	return nil, errors.New("no pipeline configuration: set " + kpipev1.EnvPipelineSpec + " to the KafkaPipeline spec as JSON, or pass --config")
}

func runCommand(ctx context.Context, log *slog.Logger, configPath, httpAddr string, shutdownTimeout time.Duration) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkContractFromEnv(); err != nil {
		return err
	}
	specJSON, err := ReadSpec(configPath)
	if err != nil {
		return err
	}
	cfg, err := LoadConfig(specJSON, SecretDirsFromEnv())
	if err != nil {
		return err
	}
	cfg.Name = os.Getenv(kpipev1.EnvPipelineName)
	cfg.Namespace = os.Getenv(kpipev1.EnvPipelineNamespace)
	p, err := New(cfg, WithLogger(log), WithShutdownTimeout(shutdownTimeout))
	if err != nil {
		return err
	}
	// The process is the pod's: the Go runtime's soft limit goes with the memory budget.
	log.Info("memory", "budget", p.set.memory.total, "from", p.set.memory.source,
		"limit", p.set.memory.limit, "goMemLimit", p.set.memory.applyGoMemLimit(os.Getenv))
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("--http-address: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()

	srv := &http.Server{Handler: p.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	runErr := p.Run(ctx)

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http server", "err", err)
	}
	return runErr
}
