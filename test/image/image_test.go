// Package image checks that the image `make image` writes without a Docker engine is the
// image the Dockerfile describes: the same entrypoint, command and user, the binary where the
// Dockerfile copies it, static, and what the distroless nonroot base brings (CA certificates,
// the nonroot user, /tmp).
package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"strings"
	"testing"
)

// stage is what the Dockerfile's final stage says about the image.
type stage struct {
	from       string
	user       string
	entrypoint []string
	cmd        []string
	copies     []string // destinations
}

func finalStage(t *testing.T, dockerfile string) stage {
	t.Helper()
	f, err := os.Open(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var s stage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			s = stage{from: strings.Fields(rest)[0]}
		case "USER":
			s.user = rest
		case "ENTRYPOINT":
			s.entrypoint = execForm(t, rest)
		case "CMD":
			s.cmd = execForm(t, rest)
		case "COPY":
			f := strings.Fields(rest)
			s.copies = append(s.copies, f[len(f)-1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

func execForm(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("the Dockerfile's %q is not in exec form: %v", s, err)
	}
	return out
}

// image is what the tarball holds: its config and the files of its layers.
type image struct {
	config struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Config       struct {
			User       string   `json:"User"`
			Entrypoint []string `json:"Entrypoint"`
			Cmd        []string `json:"Cmd"`
		} `json:"config"`
	}
	tags  []string
	files map[string]*tar.Header
	data  map[string][]byte
}

func readImage(t *testing.T, tarball string) *image {
	t.Helper()
	blobs := map[string][]byte{}
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		blobs[h.Name] = b
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(blobs["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("%s: want a docker-archive with one image in manifest.json (%v)", tarball, err)
	}
	img := &image{tags: manifest[0].RepoTags, files: map[string]*tar.Header{}, data: map[string][]byte{}}
	if err := json.Unmarshal(blobs[manifest[0].Config], &img.config); err != nil {
		t.Fatal(err)
	}
	for _, l := range manifest[0].Layers {
		img.addLayer(t, blobs[l])
	}
	return img
}

func (img *image) addLayer(t *testing.T, blob []byte) {
	t.Helper()
	var r io.Reader = bytes.NewReader(blob)
	if bytes.HasPrefix(blob, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimSuffix(path.Clean(h.Name), "/")
		img.files[name] = h
		if h.Typeflag == tar.TypeReg {
			if img.data[name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestImageMatchesDockerfile(t *testing.T) {
	tarball := os.Getenv("KPIPE_IMAGE_TAR")
	if tarball == "" {
		t.Skip("KPIPE_IMAGE_TAR is not set: run through `make test`, which builds the image with `make image`")
	}
	want := finalStage(t, "../../Dockerfile")
	img := readImage(t, tarball)
	cfg := img.config.Config

	if strings.Join(cfg.Entrypoint, " ") != strings.Join(want.entrypoint, " ") {
		t.Errorf("entrypoint: image %q, Dockerfile %q", cfg.Entrypoint, want.entrypoint)
	}
	if strings.Join(cfg.Cmd, " ") != strings.Join(want.cmd, " ") {
		t.Errorf("cmd: image %q, Dockerfile %q", cfg.Cmd, want.cmd)
	}
	if cfg.User != want.user {
		t.Errorf("user: image %q, Dockerfile %q", cfg.User, want.user)
	}
	if img.config.OS != "linux" {
		t.Errorf("os: %q, want linux", img.config.OS)
	}
	for _, dst := range want.copies {
		h := img.files[dst]
		if h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
			t.Errorf("the Dockerfile copies %s; the image has no executable file there", dst)
			continue
		}
		expectStatic(t, dst, img.data[dst])
	}
	expectBase(t, want.from, img)
}

// expectStatic: the binary runs without a dynamic loader, as on distroless/static.
func expectStatic(t *testing.T, name string, b []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Errorf("%s is not an ELF binary: %v", name, err)
		return
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked; build it with CGO_ENABLED=0", name)
		}
	}
}

// expectBase: what gcr.io/distroless/static:nonroot gives the Dockerfile's image.
func expectBase(t *testing.T, from string, img *image) {
	t.Helper()
	if from != "gcr.io/distroless/static:nonroot" {
		t.Errorf("the Dockerfile's base is %s; this test knows what distroless/static:nonroot brings: update it with the base", from)
	}
	if ca := img.data["/etc/ssl/certs/ca-certificates.crt"]; !bytes.Contains(ca, []byte("BEGIN CERTIFICATE")) {
		t.Error("no CA certificates at /etc/ssl/certs/ca-certificates.crt")
	}
	if !strings.Contains(string(img.data["/etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Error("/etc/passwd has no nonroot user 65532")
	}
	if h := img.files["/tmp"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode&0o1777 != 0o1777 {
		t.Error("no world-writable sticky /tmp")
	}
	if h := img.files["/home/nonroot"]; h == nil || h.Uid != 65532 {
		t.Error("no /home/nonroot owned by 65532")
	}
}
