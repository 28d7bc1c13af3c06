package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// containerEnv resolves the container's environment as the kubelet would: literal values,
// Secret and ConfigMap keys, and the pod's own name and namespace. Values that point into a
// mounted volume are redirected to the volume's directory on this machine.
func (r *Runner) containerEnv(ctx context.Context, ns, pod string, c corev1.Container, mounts map[string]string) ([]string, error) {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "HOSTNAME=" + pod}
	for _, e := range c.Env {
		v := e.Value
		if src := e.ValueFrom; src != nil {
			var err error
			switch {
			case src.SecretKeyRef != nil:
				v, err = r.secretKey(ctx, ns, src.SecretKeyRef.Name, src.SecretKeyRef.Key)
			case src.ConfigMapKeyRef != nil:
				var cm corev1.ConfigMap
				if err = r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: src.ConfigMapKeyRef.Name}, &cm); err == nil {
					v = cm.Data[src.ConfigMapKeyRef.Key]
				}
			case src.FieldRef != nil && src.FieldRef.FieldPath == "metadata.name":
				v = pod
			case src.FieldRef != nil && src.FieldRef.FieldPath == "metadata.namespace":
				v = ns
			}
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		}
		for mountPath, dir := range mounts {
			if v == mountPath || strings.HasPrefix(v, mountPath+"/") {
				v = dir + strings.TrimPrefix(v, mountPath)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

func (r *Runner) secretKey(ctx context.Context, ns, name, key string) (string, error) {
	var s corev1.Secret
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		return "", err
	}
	return string(s.Data[key]), nil
}

// materialiseSecrets writes each Secret volume the container mounts into a directory under
// dir, and returns mount path -> directory.
func (r *Runner) materialiseSecrets(ctx context.Context, ns string, spec corev1.PodSpec, c corev1.Container, dir string) (map[string]string, error) {
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok || v.Secret == nil {
			continue
		}
		var s corev1.Secret
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: v.Secret.SecretName}, &s); err != nil {
			return nil, fmt.Errorf("secret volume %s: %w", v.Name, err)
		}
		vdir := filepath.Join(dir, "volumes", v.Name)
		if err := os.MkdirAll(vdir, 0o700); err != nil {
			return nil, err
		}
		for k, data := range s.Data {
			if err := os.WriteFile(filepath.Join(vdir, k), data, 0o600); err != nil {
				return nil, err
			}
		}
		mounts[m.MountPath] = vdir
	}
	return mounts, nil
}
