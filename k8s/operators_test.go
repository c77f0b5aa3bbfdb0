package k8s_test

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The operators' kinds, reduced to the fields these manifests use. CloudNativePG, Strimzi and the
// OpenSearch operator publish no Go module this project can fetch (their API types are not served by the
// Go module proxy, and Strimzi's are Java), and their CRD files cannot be vendored here, so these types
// are the project's own account of each API's subset. They were checked field by field against the
// operators' published CRD schemas (CloudNativePG 1.30, Strimzi 1.2, OpenSearch operator 3.0.2) when
// written. Decoded strictly, they reject any field they do not list: a misspelt or misplaced field fails
// the test. To use a new field, look it up in the operator's CRD reference and add it here.
// `kubectl apply --dry-run=server -k` against a cluster with the operators installed checks everything
// against the real schemas.

type cnpgCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Instances             int    `json:"instances"`
		ImageName             string `json:"imageName"`
		PrimaryUpdateStrategy string `json:"primaryUpdateStrategy,omitempty"`
		EnablePDB             *bool  `json:"enablePDB,omitempty"`
		Bootstrap             struct {
			InitDB struct {
				Database      string `json:"database"`
				Owner         string `json:"owner"`
				DataChecksums *bool  `json:"dataChecksums,omitempty"`
			} `json:"initdb"`
		} `json:"bootstrap"`
		PostgreSQL struct {
			Parameters map[string]string `json:"parameters,omitempty"`
		} `json:"postgresql"`
		Managed *struct {
			Roles []struct {
				Name           string   `json:"name"`
				Ensure         string   `json:"ensure,omitempty"`
				Login          bool     `json:"login,omitempty"`
				InRoles        []string `json:"inRoles,omitempty"`
				PasswordSecret *struct {
					Name string `json:"name"`
				} `json:"passwordSecret,omitempty"`
			} `json:"roles"`
		} `json:"managed,omitempty"`
		Storage    cnpgStorage                  `json:"storage"`
		WalStorage *cnpgStorage                 `json:"walStorage,omitempty"`
		Resources  *corev1.ResourceRequirements `json:"resources,omitempty"`
		Affinity   *struct {
			EnablePodAntiAffinity *bool  `json:"enablePodAntiAffinity,omitempty"`
			TopologyKey           string `json:"topologyKey,omitempty"`
			PodAntiAffinityType   string `json:"podAntiAffinityType,omitempty"`
		} `json:"affinity,omitempty"`
	} `json:"spec"`
}

type cnpgStorage struct {
	Size         string `json:"size"`
	StorageClass string `json:"storageClass,omitempty"`
}

func (c *cnpgCluster) validate() error {
	s := c.Spec
	switch {
	case s.Instances < 1:
		return fmt.Errorf("instances %d, want at least 1", s.Instances)
	case s.Bootstrap.InitDB.Database == "" || s.Bootstrap.InitDB.Owner == "":
		return fmt.Errorf("bootstrap.initdb needs database and owner (the app Secret is made for the owner)")
	case s.PrimaryUpdateStrategy != "" && !slices.Contains([]string{"unsupervised", "supervised"}, s.PrimaryUpdateStrategy):
		return fmt.Errorf("primaryUpdateStrategy %q", s.PrimaryUpdateStrategy)
	case s.Affinity != nil && s.Affinity.PodAntiAffinityType != "" && !slices.Contains([]string{"preferred", "required"}, s.Affinity.PodAntiAffinityType):
		return fmt.Errorf("affinity.podAntiAffinityType %q", s.Affinity.PodAntiAffinityType)
	}
	return nil
}

type strimziKafka struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Kafka struct {
			Version         string `json:"version"`
			MetadataVersion string `json:"metadataVersion,omitempty"`
			Listeners       []struct {
				Name string `json:"name"`
				Port int    `json:"port"`
				Type string `json:"type"`
				TLS  bool   `json:"tls"`
			} `json:"listeners"`
			Config map[string]any `json:"config,omitempty"`
		} `json:"kafka"`
		EntityOperator *struct {
			TopicOperator *struct{} `json:"topicOperator,omitempty"`
			UserOperator  *struct{} `json:"userOperator,omitempty"`
		} `json:"entityOperator,omitempty"`
	} `json:"spec"`
}

func (k *strimziKafka) validate() error {
	if len(k.Spec.Kafka.Listeners) == 0 {
		return fmt.Errorf("spec.kafka.listeners is required")
	}
	for _, l := range k.Spec.Kafka.Listeners {
		if !slices.Contains([]string{"internal", "route", "tlsroute", "loadbalancer", "nodeport", "ingress", "cluster-ip"}, l.Type) {
			return fmt.Errorf("listener %s: type %q", l.Name, l.Type)
		}
	}
	return nil
}

type strimziNodePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Replicas int      `json:"replicas"`
		Roles    []string `json:"roles"`
		Storage  struct {
			Type    string `json:"type"`
			Volumes []struct {
				ID            int    `json:"id"`
				Type          string `json:"type"`
				Size          string `json:"size,omitempty"`
				DeleteClaim   *bool  `json:"deleteClaim,omitempty"`
				KraftMetadata string `json:"kraftMetadata,omitempty"`
			} `json:"volumes,omitempty"`
		} `json:"storage"`
		Resources  *corev1.ResourceRequirements `json:"resources,omitempty"`
		JVMOptions *struct {
			Xms string `json:"-Xms,omitempty"`
			Xmx string `json:"-Xmx,omitempty"`
		} `json:"jvmOptions,omitempty"`
	} `json:"spec"`
}

func (p *strimziNodePool) validate() error {
	if len(p.Spec.Roles) == 0 {
		return fmt.Errorf("roles is required")
	}
	for _, r := range p.Spec.Roles {
		if r != "controller" && r != "broker" {
			return fmt.Errorf("role %q", r)
		}
	}
	if !slices.Contains([]string{"ephemeral", "persistent-claim", "jbod"}, p.Spec.Storage.Type) {
		return fmt.Errorf("storage.type %q", p.Spec.Storage.Type)
	}
	for _, v := range p.Spec.Storage.Volumes {
		if v.Type != "ephemeral" && v.Type != "persistent-claim" {
			return fmt.Errorf("storage volume %d: type %q", v.ID, v.Type)
		}
		if v.KraftMetadata != "" && v.KraftMetadata != "shared" {
			return fmt.Errorf("storage volume %d: kraftMetadata %q", v.ID, v.KraftMetadata)
		}
	}
	if p.Labels["strimzi.io/cluster"] == "" {
		return fmt.Errorf("label strimzi.io/cluster names the Kafka cluster and is required")
	}
	return nil
}

type strimziTopic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		TopicName  string         `json:"topicName,omitempty"`
		Partitions int            `json:"partitions"`
		Replicas   int            `json:"replicas"`
		Config     map[string]any `json:"config,omitempty"`
	} `json:"spec"`
}

func (t *strimziTopic) validate() error {
	if t.Labels["strimzi.io/cluster"] == "" {
		return fmt.Errorf("label strimzi.io/cluster names the Kafka cluster and is required")
	}
	return nil
}

// name is the Kafka topic's name: spec.topicName, or the resource's name.
func (t *strimziTopic) name() string {
	if t.Spec.TopicName != "" {
		return t.Spec.TopicName
	}
	return t.Name
}

type openSearchCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		General struct {
			ServiceName      string            `json:"serviceName"`
			Version          string            `json:"version"`
			HTTPPort         int               `json:"httpPort,omitempty"`
			SetVMMaxMapCount *bool             `json:"setVMMaxMapCount,omitempty"`
			DrainDataNodes   *bool             `json:"drainDataNodes,omitempty"`
			AdditionalConfig map[string]string `json:"additionalConfig,omitempty"`
		} `json:"general"`
		Security *struct {
			Config *struct {
				UpdateJob *struct {
					Labels map[string]string `json:"labels,omitempty"`
				} `json:"updateJob,omitempty"`
			} `json:"config,omitempty"`
			TLS *struct {
				Transport *struct {
					Generate *bool `json:"generate,omitempty"`
					PerNode  *bool `json:"perNode,omitempty"`
				} `json:"transport,omitempty"`
				HTTP *struct {
					Generate *bool `json:"generate,omitempty"`
				} `json:"http,omitempty"`
			} `json:"tls,omitempty"`
		} `json:"security,omitempty"`
		Dashboards *struct {
			Enable bool `json:"enable"`
		} `json:"dashboards,omitempty"`
		NodePools []struct {
			Component   string                       `json:"component"`
			Replicas    int                          `json:"replicas"`
			Roles       []string                     `json:"roles"`
			DiskSize    string                       `json:"diskSize,omitempty"`
			JVM         string                       `json:"jvm,omitempty"`
			Resources   *corev1.ResourceRequirements `json:"resources,omitempty"`
			Persistence *struct {
				PVC *struct {
					AccessModes  []string `json:"accessModes,omitempty"`
					StorageClass string   `json:"storageClass,omitempty"`
				} `json:"pvc,omitempty"`
			} `json:"persistence,omitempty"`
		} `json:"nodePools"`
	} `json:"spec"`
}

func (o *openSearchCluster) validate() error {
	if o.Spec.General.ServiceName == "" {
		return fmt.Errorf("general.serviceName is required")
	}
	if len(o.Spec.NodePools) == 0 {
		return fmt.Errorf("nodePools is required")
	}
	for _, p := range o.Spec.NodePools {
		if p.Component == "" || len(p.Roles) == 0 {
			return fmt.Errorf("node pool %q: component and roles are required", p.Component)
		}
	}
	return nil
}

// nodes is the number of OpenSearch nodes over all pools.
func (o *openSearchCluster) nodes() int {
	n := 0
	for _, p := range o.Spec.NodePools {
		n += p.Replicas
	}
	return n
}
