// Package k8s_test renders the kustomize overlays with kustomize's Go API and checks what they produce:
// every object decodes strictly into its type, and the rules of docs/kubernetes.md hold (probes, limits,
// locked-down containers, pinned images, PDBs, HPAs, topic settings, network policies, alerts with
// runbooks, a dashboard that shows each alerted figure). No cluster is needed.
package k8s_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// overlay is one deployable kustomization and what its sizes must be.
type overlay struct {
	dir        string
	namespace  string
	projectors int // replicas of each projector
	nodes      int // Postgres instances, Kafka controllers and brokers, OpenSearch nodes
	replicas   int // replicas of the events topic
	minISR     string
}

var overlays = []overlay{
	{dir: "overlays/dev", namespace: "orders-dev", projectors: 2, nodes: 1, replicas: 1, minISR: "1"},
	{dir: "overlays/production", namespace: "orders", projectors: 3, nodes: 3, replicas: 3, minISR: "2"},
}

// examples are kustomizations applied by hand; they obey the same container rules.
var examples = []string{"examples/rebuild-search"}

// services are the programs that run all the time, with their ports (docs/configuration.md).
var services = map[string]int32{
	"command": 8080, "query": 8081, "outbox-relay": 8082, "projector-orders": 8083, "projector-search": 8084,
	"console": 8085,
}

// public are the services the ingress controller may reach; verifiers are those that verify bearer
// tokens against the identity provider's keys (every one but the relay, which serves no request).
var (
	public    = []string{"command", "query", "console"}
	verifiers = []string{"command", "query", "projector-orders", "projector-search", "console"}
)

// object is one rendered resource, decoded into its Go type.
type object struct {
	kind, name string
	raw        []byte
	typed      any
}

// newTyped returns a pointer to the type of apiVersion/kind, or nil for a kind this test does not know.
func newTyped(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Service":
		return &corev1.Service{}
	case "v1 Secret":
		return &corev1.Secret{}
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}
	case "batch/v1 Job":
		return &batchv1.Job{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "monitoring.coreos.com/v1 PodMonitor":
		return &monitoringv1.PodMonitor{}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}
	case "postgresql.cnpg.io/v1 Cluster":
		return &cnpgCluster{}
	case "kafka.strimzi.io/v1 Kafka":
		return &strimziKafka{}
	case "kafka.strimzi.io/v1 KafkaNodePool":
		return &strimziNodePool{}
	case "kafka.strimzi.io/v1 KafkaTopic":
		return &strimziTopic{}
	case "opensearch.org/v1 OpenSearchCluster":
		return &openSearchCluster{}
	}
	return nil
}

// decodeStrict decodes JSON into v and fails on any field v's type does not have.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

type validator interface{ validate() error }

var (
	renderMu    sync.Mutex
	renderCache = map[string][]object{}
)

// render builds the kustomization in dir (relative to k8s/) once per test binary and decodes every
// object strictly.
func render(t *testing.T, dir string) []object {
	t.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if objs, ok := renderCache[dir]; ok {
		return objs
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []object
	for _, r := range m.Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %s %s: %v", dir, r.GetKind(), r.GetName(), err)
		}
		o := object{kind: r.GetKind(), name: r.GetName(), raw: raw}
		o.typed = newTyped(r.GetApiVersion(), r.GetKind())
		if o.typed == nil {
			t.Fatalf("%s: %s %s %s: no Go type known to this test; add it to newTyped", dir, r.GetApiVersion(), o.kind, o.name)
		}
		if err := decodeStrict(raw, o.typed); err != nil {
			t.Fatalf("%s: %s %s does not decode strictly into %T: %v", dir, o.kind, o.name, o.typed, err)
		}
		if v, ok := o.typed.(validator); ok {
			if err := v.validate(); err != nil {
				t.Fatalf("%s: %s %s: %v", dir, o.kind, o.name, err)
			}
		}
		objs = append(objs, o)
	}
	renderCache[dir] = objs
	return objs
}

// all returns the rendered objects of type T.
func all[T any](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.typed.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the object of type T named name, failing the test when it is missing.
func one[T interface{ GetName() string }](t *testing.T, objs []object, name string) T {
	t.Helper()
	for _, v := range all[T](objs) {
		if v.GetName() == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %s", zero, name)
	return zero
}

// workload is a pod template with its owner's kind and name.
type workload struct {
	kind, name string
	labels     map[string]string
	pod        corev1.PodSpec
	replicas   *int32
}

func workloads(objs []object) []workload {
	var out []workload
	for _, o := range objs {
		switch v := o.typed.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{o.kind, o.name, v.Spec.Template.Labels, v.Spec.Template.Spec, v.Spec.Replicas})
		case *appsv1.StatefulSet:
			out = append(out, workload{o.kind, o.name, v.Spec.Template.Labels, v.Spec.Template.Spec, v.Spec.Replicas})
		case *batchv1.Job:
			out = append(out, workload{o.kind, o.name, v.Spec.Template.Labels, v.Spec.Template.Spec, nil})
		}
	}
	return out
}

func TestEveryKustomizationRendersStrictly(t *testing.T) {
	for _, dir := range append(overlayDirs(), examples...) {
		t.Run(dir, func(t *testing.T) {
			if objs := render(t, dir); len(objs) == 0 {
				t.Fatalf("%s renders nothing", dir)
			}
		})
	}
}

func overlayDirs() []string {
	var dirs []string
	for _, o := range overlays {
		dirs = append(dirs, o.dir)
	}
	return dirs
}

func TestOverlaysAreListed(t *testing.T) {
	entries, err := os.ReadDir("overlays")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !slices.Contains(overlayDirs(), "overlays/"+e.Name()) {
			t.Errorf("overlays/%s is not in this test's overlay table", e.Name())
		}
	}
}

// pinned: a registry path with an explicit tag other than latest (a digest may follow).
var pinnedImage = regexp.MustCompile(`^[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*:([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})(@sha256:[a-f0-9]{64})?$`)

func checkImage(image string) error {
	m := pinnedImage.FindStringSubmatch(image)
	if m == nil {
		return fmt.Errorf("image %q has no explicit tag", image)
	}
	if m[5] == "latest" {
		return fmt.Errorf("image %q uses the tag latest", image)
	}
	return nil
}

func TestImagesArePinned(t *testing.T) {
	for _, bad := range []string{"orders", "ghcr.io/orders-oss/orders", "ghcr.io/orders-oss/orders:latest", "localhost:5000/orders"} {
		if checkImage(bad) == nil {
			t.Errorf("checkImage(%q) = nil, want an error", bad)
		}
	}
	for _, good := range []string{"ghcr.io/orders-oss/orders:0.1.0", "localhost:5000/orders:1.2", "ghcr.io/cloudnative-pg/postgresql:15.18-system-trixie"} {
		if err := checkImage(good); err != nil {
			t.Errorf("checkImage(%q) = %v, want nil", good, err)
		}
	}
	for _, dir := range append(overlayDirs(), examples...) {
		objs := render(t, dir)
		for _, w := range workloads(objs) {
			for _, c := range slices.Concat(w.pod.InitContainers, w.pod.Containers) {
				if err := checkImage(c.Image); err != nil {
					t.Errorf("%s: %s %s container %s: %v", dir, w.kind, w.name, c.Name, err)
				}
			}
		}
		for _, c := range all[*cnpgCluster](objs) {
			if err := checkImage(c.Spec.ImageName); err != nil {
				t.Errorf("%s: Cluster %s: %v", dir, c.Name, err)
			}
		}
		for _, k := range all[*strimziKafka](objs) {
			if k.Spec.Kafka.Version == "" {
				t.Errorf("%s: Kafka %s: spec.kafka.version is not pinned", dir, k.Name)
			}
		}
		for _, o := range all[*openSearchCluster](objs) {
			if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(o.Spec.General.Version) {
				t.Errorf("%s: OpenSearchCluster %s: general.version %q is not an exact version", dir, o.Name, o.Spec.General.Version)
			}
		}
	}
}

func TestContainersAreLockedDown(t *testing.T) {
	for _, dir := range append(overlayDirs(), examples...) {
		for _, w := range workloads(render(t, dir)) {
			if w.pod.AutomountServiceAccountToken == nil || *w.pod.AutomountServiceAccountToken {
				t.Errorf("%s: %s %s mounts a service account token; none of ours calls the Kubernetes API", dir, w.kind, w.name)
			}
			for _, c := range slices.Concat(w.pod.InitContainers, w.pod.Containers) {
				for _, err := range containerProblems(w.pod.SecurityContext, c) {
					t.Errorf("%s: %s %s container %s: %v", dir, w.kind, w.name, c.Name, err)
				}
			}
		}
	}
}

// containerProblems lists what breaks the rules for one container: requests and limits of CPU and
// memory; non-root, read-only root file system, no privilege escalation, all capabilities dropped,
// the runtime's default seccomp profile (on the container, or inherited from the pod).
func containerProblems(pod *corev1.PodSecurityContext, c corev1.Container) []error {
	var errs []error
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			errs = append(errs, fmt.Errorf("no %s request", r))
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			errs = append(errs, fmt.Errorf("no %s limit", r))
		}
	}
	sc := c.SecurityContext
	if sc == nil {
		return append(errs, fmt.Errorf("no securityContext"))
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && pod != nil {
		nonRoot = pod.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		errs = append(errs, fmt.Errorf("runAsNonRoot is not true"))
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		errs = append(errs, fmt.Errorf("readOnlyRootFilesystem is not true"))
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		errs = append(errs, fmt.Errorf("allowPrivilegeEscalation is not false"))
	}
	if sc.Privileged != nil && *sc.Privileged {
		errs = append(errs, fmt.Errorf("privileged"))
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		errs = append(errs, fmt.Errorf("capabilities must drop ALL and add none"))
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod != nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		errs = append(errs, fmt.Errorf("seccomp profile is not RuntimeDefault"))
	}
	return errs
}

func TestServices(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.dir, func(t *testing.T) {
			objs := render(t, ov.dir)
			seen := map[string]bool{}
			for _, w := range workloads(objs) {
				port, ok := services[w.name]
				if w.kind == "Job" {
					continue
				}
				if !ok {
					t.Errorf("%s %s is not one of the services", w.kind, w.name)
					continue
				}
				seen[w.name] = true
				if len(w.pod.Containers) != 1 {
					t.Fatalf("%s: %d containers, want 1", w.name, len(w.pod.Containers))
				}
				c := w.pod.Containers[0]
				if want := []string{"/usr/local/bin/" + w.name}; !slices.Equal(c.Command, want) {
					t.Errorf("%s: command %q, want %q (the image holds every binary)", w.name, c.Command, want)
				}
				if len(c.Ports) != 1 || c.Ports[0].ContainerPort != port || c.Ports[0].Name != "http" {
					t.Errorf("%s: ports %+v, want one named http on %d", w.name, c.Ports, port)
				}
				if v := envValue(c, "HTTP_ADDR"); v != fmt.Sprintf(":%d", port) {
					t.Errorf("%s: HTTP_ADDR %q, want :%d", w.name, v, port)
				}
				checkProbe(t, w.name, "readiness", c.ReadinessProbe, "/readyz")
				checkProbe(t, w.name, "liveness", c.LivenessProbe, "/healthz")
				checkPDB(t, objs, w)
				if w.labels["app.kubernetes.io/component"] != "service" || w.labels["app.kubernetes.io/part-of"] != "orders" {
					t.Errorf("%s: pod labels %v lack the component=service and part-of=orders labels the PodMonitor and NetworkPolicies select", w.name, w.labels)
				}
			}
			for name := range services {
				if !seen[name] {
					t.Errorf("service %s is not deployed", name)
				}
			}
		})
	}
}

func checkProbe(t *testing.T, name, what string, p *corev1.Probe, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: no HTTP %s probe", name, what)
		return
	}
	if p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" {
		t.Errorf("%s: %s probe on %s port %s, want %s on http", name, what, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
	}
}

// checkPDB wants exactly one PodDisruptionBudget whose selector matches w's pods.
func checkPDB(t *testing.T, objs []object, w workload) {
	t.Helper()
	var matching []string
	for _, pdb := range all[*policyv1.PodDisruptionBudget](objs) {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil {
			t.Errorf("PodDisruptionBudget %s: %v", pdb.Name, err)
			continue
		}
		if !sel.Empty() && sel.Matches(labels.Set(w.labels)) {
			matching = append(matching, pdb.Name)
		}
	}
	if len(matching) != 1 {
		t.Errorf("%s %s: PodDisruptionBudgets selecting its pods: %v, want exactly one", w.kind, w.name, matching)
	}
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func envValue(c corev1.Container, name string) string {
	if e := envVar(c, name); e != nil {
		return e.Value
	}
	return ""
}

func TestReplicasAndAutoscaling(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.dir, func(t *testing.T) {
			objs := render(t, ov.dir)
			// One relay leads under the lease in Postgres, one stands by.
			if r := one[*appsv1.Deployment](t, objs, "outbox-relay").Spec.Replicas; r == nil || *r != 2 {
				t.Errorf("outbox-relay replicas %v, want 2", r)
			}
			for _, name := range []string{"projector-orders", "projector-search"} {
				sts := one[*appsv1.StatefulSet](t, objs, name)
				if r := sts.Spec.Replicas; r == nil || int(*r) != ov.projectors {
					t.Errorf("%s replicas %v, want %d", name, r, ov.projectors)
				} else if *r > 6 {
					t.Errorf("%s replicas %d: more than the topic's 6 partitions", name, *r)
				}
				// Static membership: the Kafka group instance id is the pod's name.
				e := envVar(sts.Spec.Template.Spec.Containers[0], "PROJECTOR_INSTANCE_ID")
				if e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
					t.Errorf("%s: PROJECTOR_INSTANCE_ID is not taken from metadata.name", name)
				}
			}
			hpas := map[string]*autoscalingv2.HorizontalPodAutoscaler{}
			for _, h := range all[*autoscalingv2.HorizontalPodAutoscaler](objs) {
				hpas[h.Spec.ScaleTargetRef.Kind+"/"+h.Spec.ScaleTargetRef.Name] = h
			}
			for _, name := range []string{"command", "query"} {
				h := hpas["Deployment/"+name]
				if h == nil {
					t.Errorf("no HorizontalPodAutoscaler for Deployment %s", name)
					continue
				}
				if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas || len(h.Spec.Metrics) == 0 {
					t.Errorf("HPA %s: min %v max %d metrics %d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas, len(h.Spec.Metrics))
				}
				// A replica count in the Deployment would be reset by every apply, fighting the HPA.
				if r := one[*appsv1.Deployment](t, objs, name).Spec.Replicas; r != nil {
					t.Errorf("Deployment %s sets replicas %d although an HPA scales it", name, *r)
				}
			}
		})
	}
}

func TestSecretsAreReferencedNotWritten(t *testing.T) {
	for _, dir := range append(overlayDirs(), examples...) {
		objs := render(t, dir)
		for _, s := range all[*corev1.Secret](objs) {
			t.Errorf("%s: Secret %s is written in the repository; reference a Secret the operators or the user create", dir, s.Name)
		}
		for _, w := range workloads(objs) {
			for _, c := range w.pod.Containers {
				for _, e := range c.Env {
					if strings.Contains(e.Value, "://") && strings.Contains(e.Value, "@") {
						t.Errorf("%s: %s %s: %s holds credentials in a literal value", dir, w.kind, w.name, e.Name)
					}
				}
				if e := envVar(c, "DATABASE_URL"); e != nil {
					// Each service logs in as its own role; only the migration, ordersctl and the console
					// (an operator tool that rebuilds read models) as the owner.
					want := "orders-pg-app"
					if w.kind != "Job" && w.name != "console" {
						want = serviceDBSecret[w.name]
					}
					ref := secretRef(e)
					if ref == nil || ref.Name != want || ref.Key != "uri" {
						t.Errorf("%s: %s %s: DATABASE_URL must come from the Secret %s, key uri", dir, w.kind, w.name, want)
					}
				}
				if e := envVar(c, "OPENSEARCH_URL"); e != nil && secretRef(e) == nil {
					t.Errorf("%s: %s %s: OPENSEARCH_URL must come from a Secret", dir, w.kind, w.name)
				}
				for _, from := range c.EnvFrom {
					// The examples run beside an overlay's ConfigMap; an overlay must carry its own.
					if from.ConfigMapRef != nil && !slices.Contains(examples, dir) {
						one[*corev1.ConfigMap](t, objs, from.ConfigMapRef.Name)
					}
				}
			}
		}
	}
}

// serviceDBSecret is the Secret of each service's Postgres role (data/postgres.yaml declares the roles
// with these Secrets' passwords).
var serviceDBSecret = map[string]string{"command": "orders-db-command", "outbox-relay": "orders-db-relay",
	"projector-orders": "orders-db-projector", "query": "orders-db-query", "projector-search": "orders-db-keyreader"}

// serviceDBRole is each service's Postgres role, whose password is its serviceDBSecret.
var serviceDBRole = map[string]string{"command": "orders_command", "outbox-relay": "orders_relay", "projector-orders": "orders_projector",
	"query": "orders_query", "projector-search": "orders_keyreader"}

// Every service role is a managed role of the Cluster with its service's Secret, and the owner is a
// member of each (the migration then grants their rights).
func TestServiceRolesAreManaged(t *testing.T) {
	for _, ov := range overlays {
		objs := render(t, ov.dir)
		c := one[*cnpgCluster](t, objs, "orders-pg")
		if c.Spec.Managed == nil {
			t.Fatalf("%s: the Cluster declares no managed roles", ov.dir)
		}
		secrets := map[string]string{}
		var ownerIn []string
		for _, r := range c.Spec.Managed.Roles {
			if r.PasswordSecret != nil {
				secrets[r.Name] = r.PasswordSecret.Name
			}
			if r.Name == c.Spec.Bootstrap.InitDB.Owner {
				ownerIn = r.InRoles
			}
		}
		for svc, secret := range serviceDBSecret {
			role := serviceDBRole[svc]
			if secrets[role] != secret {
				t.Errorf("%s: role %s takes its password from %q, want %s (what %s logs in with)", ov.dir, role, secrets[role], secret, svc)
			}
			if !slices.Contains(ownerIn, role) {
				t.Errorf("%s: the owner is not a member of %s", ov.dir, role)
			}
		}
	}
}

// piiWorkloads seal or open personal data: each mounts the master key from the Secret the user creates,
// at the path PII_MASTER_KEY_FILE names (the ConfigMap), read-only; nothing else mounts it.
var piiWorkloads = []string{"command", "projector-orders", "projector-search", "console", "orders-rebuild-search"}

func TestMasterKeyIsASecretMountedWhereNeeded(t *testing.T) {
	for _, dir := range append(overlayDirs(), examples...) {
		objs := render(t, dir)
		for _, w := range workloads(objs) {
			var secret, path string
			for _, v := range w.pod.Volumes {
				if v.Secret != nil && v.Secret.SecretName == "orders-pii-master-key" {
					secret = v.Name
				}
			}
			for _, c := range w.pod.Containers {
				for _, m := range c.VolumeMounts {
					if m.Name == secret && secret != "" {
						if !m.ReadOnly {
							t.Errorf("%s: %s mounts the master key writable", dir, w.name)
						}
						path = m.MountPath + "/master.key"
					}
				}
				if e := envVar(c, "PII_MASTER_KEY_FILE"); e != nil && e.Value != "" && !strings.HasPrefix(e.Value, "/") {
					t.Errorf("%s: %s: PII_MASTER_KEY_FILE %q is not a path", dir, w.name, e.Value)
				}
			}
			needs := slices.Contains(piiWorkloads, w.name)
			if needs && path != "/etc/orders/pii/master.key" {
				t.Errorf("%s: %s %s does not mount the Secret orders-pii-master-key at /etc/orders/pii (PII_MASTER_KEY_FILE)", dir, w.kind, w.name)
			}
			if !needs && secret != "" {
				t.Errorf("%s: %s %s mounts the master key, which it does not need", dir, w.kind, w.name)
			}
		}
		if !slices.Contains(examples, dir) {
			if got := one[*corev1.ConfigMap](t, objs, "orders-config").Data["PII_MASTER_KEY_FILE"]; got != "/etc/orders/pii/master.key" {
				t.Errorf("%s: the ConfigMap's PII_MASTER_KEY_FILE is %q", dir, got)
			}
		}
	}
}

func secretRef(e *corev1.EnvVar) *corev1.SecretKeySelector {
	if e.ValueFrom == nil {
		return nil
	}
	return e.ValueFrom.SecretKeyRef
}

func TestMigrationJob(t *testing.T) {
	for _, ov := range overlays {
		job := one[*batchv1.Job](t, render(t, ov.dir), "orders-migrate")
		c := job.Spec.Template.Spec.Containers[0]
		if !slices.Equal(c.Command, []string{"/usr/local/bin/ordersctl"}) || !slices.Equal(c.Args, []string{"migrate"}) {
			t.Errorf("%s: migration Job runs %q %q, want ordersctl migrate", ov.dir, c.Command, c.Args)
		}
	}
	job := one[*batchv1.Job](t, render(t, "examples/rebuild-search"), "orders-rebuild-search")
	if c := job.Spec.Template.Spec.Containers[0]; !slices.Equal(c.Args, []string{"projector", "rebuild", "search"}) {
		t.Errorf("rebuild example runs %q", c.Args)
	}
}

func TestTopics(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.dir, func(t *testing.T) {
			topics := map[string]*strimziTopic{}
			for _, tp := range all[*strimziTopic](render(t, ov.dir)) {
				topics[tp.name()] = tp
			}
			ev := topics["orders.events"]
			if ev == nil {
				t.Fatal("no KafkaTopic for orders.events")
			}
			// The events topic is the source of every rebuild: it keeps everything (docs/operations.md).
			want := map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete", "min.insync.replicas": ov.minISR}
			for k, v := range want {
				if got := fmt.Sprint(ev.Spec.Config[k]); got != v {
					t.Errorf("orders.events %s = %s, want %s", k, got, v)
				}
			}
			if ev.Spec.Partitions != 6 || ev.Spec.Replicas != ov.replicas {
				t.Errorf("orders.events partitions %d replicas %d, want 6 and %d", ev.Spec.Partitions, ev.Spec.Replicas, ov.replicas)
			}
			pub := topics["orders.public.v1"]
			if pub == nil {
				t.Fatal("no KafkaTopic for orders.public.v1")
			}
			if pub.Spec.Partitions != 6 || pub.Spec.Replicas != ov.replicas || fmt.Sprint(pub.Spec.Config["cleanup.policy"]) != "delete" {
				t.Errorf("orders.public.v1: partitions %d replicas %d cleanup.policy %v", pub.Spec.Partitions, pub.Spec.Replicas, pub.Spec.Config["cleanup.policy"])
			}
		})
	}
}

func TestDependencies(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.dir, func(t *testing.T) {
			objs := render(t, ov.dir)
			pg := one[*cnpgCluster](t, objs, "orders-pg")
			if pg.Spec.Instances != ov.nodes {
				t.Errorf("Postgres instances %d, want %d", pg.Spec.Instances, ov.nodes)
			}
			if !strings.Contains(pg.Spec.ImageName, "postgresql:15.") {
				t.Errorf("Postgres image %s, want Postgres 15", pg.Spec.ImageName)
			}
			one[*strimziKafka](t, objs, "orders-kafka")
			roles := map[string]int{}
			for _, p := range all[*strimziNodePool](objs) {
				if p.Labels["strimzi.io/cluster"] != "orders-kafka" {
					t.Errorf("KafkaNodePool %s belongs to %q", p.Name, p.Labels["strimzi.io/cluster"])
				}
				for _, r := range p.Spec.Roles {
					roles[r] += p.Spec.Replicas
				}
			}
			if roles["controller"] != ov.nodes || roles["broker"] != ov.nodes {
				t.Errorf("Kafka controllers %d brokers %d, want %d each", roles["controller"], roles["broker"], ov.nodes)
			}
			search := one[*openSearchCluster](t, objs, "orders-search")
			if search.nodes() != ov.nodes || !strings.HasPrefix(search.Spec.General.Version, "2.19.") {
				t.Errorf("OpenSearch nodes %d version %s, want %d nodes of 2.19.x", search.nodes(), search.Spec.General.Version, ov.nodes)
			}
			cm := one[*corev1.ConfigMap](t, objs, "orders-config")
			if got := cm.Data["KAFKA_BROKERS"]; got != "orders-kafka-kafka-bootstrap:9092" {
				t.Errorf("KAFKA_BROKERS %q does not name the Strimzi bootstrap Service of orders-kafka", got)
			}
		})
	}
}

func TestNetworkPolicies(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.dir, func(t *testing.T) {
			objs := render(t, ov.dir)
			var denyAll, dns bool
			for _, np := range all[*networkingv1.NetworkPolicy](objs) {
				s := np.Spec
				everyPod := len(s.PodSelector.MatchLabels) == 0 && len(s.PodSelector.MatchExpressions) == 0
				both := slices.Contains(s.PolicyTypes, networkingv1.PolicyTypeIngress) && slices.Contains(s.PolicyTypes, networkingv1.PolicyTypeEgress)
				if everyPod && both && len(s.Ingress) == 0 && len(s.Egress) == 0 {
					denyAll = true
				}
				if everyPod {
					for _, e := range s.Egress {
						for _, p := range e.Ports {
							if p.Port != nil && p.Port.IntValue() == 53 && p.Protocol != nil && *p.Protocol == corev1.ProtocolUDP {
								dns = true
							}
						}
					}
				}
			}
			if !denyAll {
				t.Error("no default-deny NetworkPolicy (every pod, Ingress and Egress, no rules)")
			}
			if !dns {
				t.Error("no NetworkPolicy lets every pod reach DNS")
			}
			// Each service must be reachable by Prometheus on its port, the public ones by the ingress
			// controller, and those that verify tokens must reach the identity provider (HTTPS).
			for name, port := range services {
				w := findWorkload(t, objs, name)
				if !ingressAllowed(objs, w.labels, port, "monitoring") {
					t.Errorf("%s: no NetworkPolicy admits Prometheus (namespace monitoring) on %d", name, port)
				}
				want := slices.Contains(public, name)
				if got := ingressAllowed(objs, w.labels, port, "ingress-nginx"); got != want {
					t.Errorf("%s: ingress from the ingress controller allowed = %v, want %v", name, got, want)
				}
				if slices.Contains(verifiers, name) && !egressAllowed(objs, w.labels, 443) {
					t.Errorf("%s: verifies tokens but no NetworkPolicy lets it reach the identity provider on 443", name)
				}
			}
			// The console reads every store and calls the projectors' operator endpoints.
			console := findWorkload(t, objs, "console")
			for _, peer := range []string{"orders-pg", "orders-kafka", "orders-search", "projector-orders", "projector-search"} {
				if !egressToPeer(objs, console.labels, peer) {
					t.Errorf("console: no NetworkPolicy lets it reach %s", peer)
				}
			}
		})
	}
}

func findWorkload(t *testing.T, objs []object, name string) workload {
	t.Helper()
	for _, w := range workloads(objs) {
		if w.name == name {
			return w
		}
	}
	t.Fatalf("no workload %s", name)
	return workload{}
}

// ingressAllowed says whether some NetworkPolicy selecting pods with podLabels admits TCP port from a
// peer that selects the namespace named ns (by its kubernetes.io/metadata.name label).
func ingressAllowed(objs []object, podLabels map[string]string, port int32, ns string) bool {
	for _, np := range all[*networkingv1.NetworkPolicy](objs) {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		for _, rule := range np.Spec.Ingress {
			portOK := len(rule.Ports) == 0
			for _, p := range rule.Ports {
				portOK = portOK || (p.Port != nil && p.Port.IntValue() == int(port))
			}
			for _, peer := range rule.From {
				if portOK && peer.NamespaceSelector != nil && peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == ns {
					return true
				}
			}
		}
	}
	return false
}

// egressAllowed says whether some NetworkPolicy selecting pods with podLabels lets them send to TCP port
// anywhere (a rule without peers).
func egressAllowed(objs []object, podLabels map[string]string, port int) bool {
	for _, np := range all[*networkingv1.NetworkPolicy](objs) {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		for _, rule := range np.Spec.Egress {
			for _, p := range rule.Ports {
				if len(rule.To) == 0 && p.Port != nil && p.Port.IntValue() == port {
					return true
				}
			}
		}
	}
	return false
}

// egressToPeer says whether some NetworkPolicy lets pods with podLabels send to the pods named peer: our
// workloads by app.kubernetes.io/name, the dependencies by their operators' cluster labels.
func egressToPeer(objs []object, podLabels map[string]string, peer string) bool {
	peerLabels := map[string]labels.Set{
		"orders-pg":     {"cnpg.io/cluster": "orders-pg"},
		"orders-kafka":  {"strimzi.io/cluster": "orders-kafka", "strimzi.io/broker-role": "true"},
		"orders-search": {"opensearch.org/opensearch-cluster": "orders-search"},
	}[peer]
	if peerLabels == nil {
		peerLabels = labels.Set{"app.kubernetes.io/name": peer, "app.kubernetes.io/part-of": "orders"}
	}
	for _, np := range all[*networkingv1.NetworkPolicy](objs) {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		for _, rule := range np.Spec.Egress {
			for _, to := range rule.To {
				if to.PodSelector == nil || to.NamespaceSelector != nil {
					continue
				}
				if ps, err := metav1.LabelSelectorAsSelector(to.PodSelector); err == nil && ps.Matches(peerLabels) {
					return true
				}
			}
		}
	}
	return false
}

func TestPodMonitorScrapesEveryService(t *testing.T) {
	for _, ov := range overlays {
		objs := render(t, ov.dir)
		pm := one[*monitoringv1.PodMonitor](t, objs, "orders")
		sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		for name := range services {
			w := findWorkload(t, objs, name)
			if !sel.Matches(labels.Set(w.labels)) {
				t.Errorf("%s: PodMonitor orders does not select %s", ov.dir, name)
			}
		}
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if ep.Port == nil || *ep.Port != "http" || ep.Path != "/metrics" {
				t.Errorf("%s: PodMonitor endpoint %+v, want port http path /metrics", ov.dir, ep)
			}
		}
	}
}

// alertRule is one alerting rule of the PrometheusRule.
type alertRule struct {
	name, expr  string
	labels      map[string]string
	annotations map[string]string
}

func alertRules(t *testing.T, objs []object) []alertRule {
	t.Helper()
	var out []alertRule
	for _, pr := range all[*monitoringv1.PrometheusRule](objs) {
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				out = append(out, alertRule{r.Alert, r.Expr.String(), r.Labels, r.Annotations})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no alerting rules")
	}
	return out
}

// The figures the brief asks alerts for; each must be alerted on.
var alertedMetrics = []string{
	"relay_oldest_unpublished_age_seconds", "relay_leader", "projector_lag_records", "projector_lag_seconds",
	"projector_parked_orders", "projector_freshness_seconds_bucket", "http_requests_total",
}

func TestAlerts(t *testing.T) {
	anchors := markdownAnchors(t, "../docs/operations.md")
	registered := registeredMetrics(t)
	for _, ov := range overlays {
		rules := alertRules(t, render(t, ov.dir))
		used := map[string]bool{}
		for _, r := range rules {
			if s := r.labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: alert %s severity %q, want warning or critical", ov.dir, r.name, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.annotations[a] == "" {
					t.Errorf("%s: alert %s has no %s", ov.dir, r.name, a)
				}
			}
			url := r.annotations["runbook_url"]
			_, anchor, _ := strings.Cut(url, "#")
			if !strings.Contains(url, "docs/operations.md#") || !anchors[anchor] {
				t.Errorf("%s: alert %s runbook_url %q is not a heading of docs/operations.md", ov.dir, r.name, url)
			}
			for _, m := range metricNames(r.expr) {
				used[m] = true
				if base := histogramBase(m); !registered[base] {
					t.Errorf("%s: alert %s uses %s, which no Go code registers", ov.dir, r.name, m)
				}
			}
		}
		for _, m := range alertedMetrics {
			if !used[m] {
				t.Errorf("%s: no alert on %s", ov.dir, m)
			}
		}
	}
}

func TestDashboardShowsEveryAlertedMetric(t *testing.T) {
	file, err := os.ReadFile("base/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, ov := range overlays {
		objs := render(t, ov.dir)
		cm := one[*corev1.ConfigMap](t, objs, "orders-grafana-dashboard")
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("%s: dashboard ConfigMap lacks the label grafana_dashboard=1 the Grafana sidecar looks for", ov.dir)
		}
		shipped := cm.Data["grafana-dashboard.json"]
		if shipped != string(file) {
			t.Errorf("%s: the ConfigMap does not ship base/monitoring/grafana-dashboard.json as it is", ov.dir)
		}
		exprs := dashboardExprs(t, []byte(shipped))
		for _, r := range alertRules(t, objs) {
			for _, m := range metricNames(r.expr) {
				re := regexp.MustCompile(`\b` + regexp.QuoteMeta(m) + `\b`)
				if !slices.ContainsFunc(exprs, re.MatchString) {
					t.Errorf("%s: alert %s uses %s, which no dashboard panel shows", ov.dir, r.name, m)
				}
			}
		}
	}
}

// dashboardExprs parses a Grafana dashboard and returns every panel query, rows' panels included.
func dashboardExprs(t *testing.T, data []byte) []string {
	t.Helper()
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Title  string            `json:"title"`
		UID    string            `json:"uid"`
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard has no title, uid or panels")
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(raws []json.RawMessage) {
		for _, raw := range raws {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("dashboard panel: %v", err)
			}
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return exprs
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promFunctions = []string{"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
		"rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "absent", "absent_over_time",
		"vector", "scalar", "clamp_min", "clamp_max", "abs", "time", "max_over_time", "min_over_time",
		"avg_over_time", "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
)

// metricNames returns the metric names a PromQL expression reads.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, "")
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRanges.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	var out []string
	for _, id := range promIdent.FindAllString(e, -1) {
		if !slices.Contains(promFunctions, id) && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func histogramBase(m string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(m, suffix); ok {
			return b
		}
	}
	return m
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`sum by (namespace, le) (rate(a_b_bucket{code=~"5.."}[5m])) / on(x) b_total > 0.5 or absent(c)`)
	if want := []string{"a_b_bucket", "b_total", "c"}; !slices.Equal(got, want) {
		t.Errorf("metricNames = %q, want %q", got, want)
	}
}

// docs/observability.md lists every metric our code registers and every alert the PrometheusRule has.
func TestObservabilityDocListsEveryMetricAndAlert(t *testing.T) {
	doc, err := os.ReadFile("../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`^(http|orders|projector|relay|snapshot|snapshots)_[a-z_]+$`)
	for name := range registeredMetrics(t) {
		if metric.MatchString(name) && !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/observability.md does not list the metric %s", name)
		}
	}
	for _, ov := range overlays {
		for _, r := range alertRules(t, render(t, ov.dir)) {
			if !strings.Contains(string(doc), "| "+r.name+" |") {
				t.Errorf("docs/observability.md does not list the alert %s in its alerts table", r.name)
			}
		}
	}
}

// registeredMetrics returns every `Name: "..."` string in the Go code of services/ and internal/:
// prometheus.CounterOpts, GaugeOpts and HistogramOpts name their metric that way.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`Name:\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	for _, root := range []string{"../services", "../internal"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range re.FindAllStringSubmatch(string(src), -1) {
				names[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !names["relay_leader"] {
		t.Fatal("found no metric registrations in services/ and internal/")
	}
	return names
}

// markdownAnchors returns the GitHub anchors of a Markdown file's headings.
func markdownAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	for _, line := range strings.Split(string(src), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimLeft(h, "#")
			slug := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), ""), " ", "-")
			anchors[slug] = true
		}
	}
	return anchors
}
