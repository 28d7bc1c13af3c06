// Command kafka runs kfake, kpipe's in-process Kafka, as a server for the node suite's Kafka
// Deployment: one broker listening on every address, which advertises itself under the
// Service's DNS name so that clients in pods (and the test driver, through CoreDNS) reach it
// as they would a real broker.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	advertise := flag.String("advertise", "kafka.kafka.svc.cluster.local", "the host name the broker gives clients in metadata")
	port := flag.Int("port", 9092, "the port to listen on (every address)")
	partitions := flag.Int("partitions", 4, "partitions of the -topics")
	topics := flag.String("topics", "", "comma-separated topics created at start")
	users := flag.String("scram-users", "", "comma-separated USER:PASSWORD superusers; when set, clients must log in with SASL SCRAM-SHA-512")
	flag.Parse()
	if err := run(*advertise, *port, int32(*partitions), *topics, *users); err != nil {
		fmt.Fprintln(os.Stderr, "kafka:", err)
		os.Exit(1)
	}
}

func run(advertise string, port int, partitions int32, topics, users string) error {
	listen := func(network, _ string) (net.Listener, error) {
		ln, err := net.Listen(network, net.JoinHostPort("", strconv.Itoa(port)))
		if err != nil {
			return nil, err
		}
		return advertised{Listener: ln, addr: net.JoinHostPort(advertise, strconv.Itoa(port))}, nil
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.ListenFn(listen), kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(partitions))}
	if users != "" {
		opts = append(opts, kfake.EnableSASL())
		for u := range strings.SplitSeq(users, ",") {
			name, pass, _ := strings.Cut(u, ":")
			opts = append(opts, kfake.Superuser("SCRAM-SHA-512", name, pass))
		}
	}
	if topics != "" {
		opts = append(opts, kfake.SeedTopics(partitions, strings.Split(topics, ",")...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	fmt.Printf("kafka: listening on :%d, advertised as %s:%d\n", port, advertise, port)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	c.Close()
	return nil
}

// advertised is a listener whose address, which kfake hands to clients as the broker's, is
// the advertised host name.
type advertised struct {
	net.Listener
	addr string
}

func (a advertised) Addr() net.Addr { return hostAddr(a.addr) }

type hostAddr string

func (hostAddr) Network() string  { return "tcp" }
func (h hostAddr) String() string { return string(h) }
