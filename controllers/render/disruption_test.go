package render

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

func TestPodDisruptionBudget(t *testing.T) {
	if b := PodDisruptionBudget(pipeline()); b != nil {
		t.Fatalf("a budget without spec.disruptionBudget: %+v", b)
	}
	kp := pipeline(func(kp *kpipev1.KafkaPipeline) {
		kp.Spec.DisruptionBudget = &kpipev1.DisruptionBudgetSpec{MaxUnavailable: intstr.FromString("25%")}
	})
	b := PodDisruptionBudget(kp)
	dep, err := Deployment(Input{Pipeline: kp, Image: "kpipe:1", Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != dep.Name || b.Namespace != dep.Namespace || !reflect.DeepEqual(b.OwnerReferences, dep.OwnerReferences) {
		t.Errorf("the budget is not named and owned like the Deployment: %+v", b.ObjectMeta)
	}
	for k, v := range b.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the budget selects %s=%s, which the pods do not carry", k, v)
		}
	}
	if b.Spec.MaxUnavailable.String() != "25%" || b.Spec.MinAvailable != nil {
		t.Errorf("maxUnavailable %v, minAvailable %v", b.Spec.MaxUnavailable, b.Spec.MinAvailable)
	}
}
