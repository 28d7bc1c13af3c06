// Command image writes a container image as a docker-archive tarball (what `docker save`
// writes; `docker load`, `ctr images import` and `podman load` read it) without a Docker
// engine: one layer holding the given files, on the base that gcr.io/distroless/static:nonroot
// gives the Dockerfile (CA certificates, an /etc/passwd with root and nonroot 65532, /tmp,
// /home/nonroot), and a config with the entrypoint, command and user.
//
//	go run . -tag ghcr.io/kpipe-io/kpipe:dev -file ../../../bin/linux/kpipe:/kpipe \
//	  -entrypoint /kpipe -cmd manager -out ../../../bin/images/kpipe.tar
//
// The CA certificates are read at build time from the build machine's bundle (-ca; on Debian,
// /etc/ssl/certs/ca-certificates.crt from the ca-certificates package). Every file is owned by root and dated at the
// Unix epoch, so the same inputs give the same image.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group  = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
)

// caBundles are where Debian/Ubuntu, Fedora/RHEL and macOS keep the system's CA bundle.
var caBundles = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"}

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	tag, out, user, ca, arch string
	files, entrypoint, cmd   list
	env                      list
}

func main() {
	var o options
	flag.StringVar(&o.tag, "tag", "", "the image's name and tag, for example ghcr.io/kpipe-io/kpipe:dev")
	flag.StringVar(&o.out, "out", "", "the tarball to write")
	flag.StringVar(&o.user, "user", "65532:65532", "the user the image runs as")
	flag.StringVar(&o.ca, "ca", "", "the CA bundle copied to /etc/ssl/certs/ca-certificates.crt (default: the build machine's, "+strings.Join(caBundles, ", ")+")")
	flag.StringVar(&o.arch, "arch", "amd64", "the image's architecture")
	flag.Var(&o.files, "file", "SRC:DST, a file copied into the image (mode 0755); repeatable")
	flag.Var(&o.entrypoint, "entrypoint", "one entrypoint argument; repeatable")
	flag.Var(&o.cmd, "cmd", "one command argument; repeatable")
	flag.Var(&o.env, "env", "KEY=VALUE; repeatable")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.tag == "" || o.out == "" || len(o.entrypoint) == 0 {
		return errors.New("-tag, -out and -entrypoint are required")
	}
	tag, err := name.NewTag(o.tag)
	if err != nil {
		return err
	}
	layer, err := filesLayer(o)
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = o.entrypoint
	cf.Config.Cmd = o.cmd
	cf.Config.User = o.user
	cf.Config.WorkingDir = "/"
	cf.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}, o.env...)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	tmp := o.out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return err
	}
	return os.Rename(tmp, o.out)
}

// filesLayer is the base (directories, passwd, group, CA bundle) and the -file files.
func filesLayer(o options) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dir := func(p string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: epoch})
	}
	file := func(p string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"etc", "etc/ssl", "etc/ssl/certs", "home", "root"} {
		if err := dir(d, 0o755, 0); err != nil {
			return nil, err
		}
	}
	if err := dir("home/nonroot", 0o700, 65532); err != nil {
		return nil, err
	}
	if err := dir("tmp", 0o1777, 0); err != nil {
		return nil, err
	}
	ca, err := readCA(o.ca)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{"etc/passwd", []byte(passwd)}, {"etc/group", []byte(group)}, {"etc/ssl/certs/ca-certificates.crt", ca}} {
		if err := file(f.path, 0o644, f.data); err != nil {
			return nil, err
		}
	}
	for _, spec := range o.files {
		src, dst, ok := strings.Cut(spec, ":")
		if !ok || !strings.HasPrefix(dst, "/") {
			return nil, fmt.Errorf("-file %q: want SRC:/DST", spec)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		if err := file(strings.TrimPrefix(dst, "/"), 0o755, data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

func readCA(path string) ([]byte, error) {
	paths := caBundles
	if path != "" {
		paths = []string{path}
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no CA bundle at %s: install ca-certificates, or pass -ca", strings.Join(paths, ", "))
}
