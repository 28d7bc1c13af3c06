// Package v1alpha1 holds the kpipe.io/v1alpha1 API: the KafkaPipeline kind.
//
// +kubebuilder:object:generate=true
// +groupName=kpipe.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the kpipe API.
	GroupVersion = schema.GroupVersion{Group: "kpipe.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kpipe types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kpipe types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
