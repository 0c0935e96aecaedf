package xds

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// dumpTypes are the resource types DumpJSON writes, in xDS order.
var dumpTypes = []resourcev3.Type{
	resourcev3.ClusterType,
	resourcev3.EndpointType,
	resourcev3.ListenerType,
	resourcev3.RouteType,
}

// DumpJSON renders a node's snapshot for the admin API:
//
//	{"version": {"<type url>": "<version>", ...},
//	 "resources": {"<type url>": {"<name>": <resource as protojson>, ...}, ...}}
//
// Resources are keyed by name, so the output is deterministic.
func DumpJSON(snap cache.ResourceSnapshot) ([]byte, error) {
	if snap == nil {
		return nil, fmt.Errorf("dump: no snapshot")
	}
	versions := map[string]string{}
	resources := map[string]map[string]json.RawMessage{}
	opts := protojson.MarshalOptions{UseProtoNames: true}
	for _, t := range dumpTypes {
		versions[t] = snap.GetVersion(t)
		byName := snap.GetResources(t)
		out := make(map[string]json.RawMessage, len(byName))
		for _, name := range slices.Sorted(maps.Keys(byName)) {
			b, err := opts.Marshal(byName[name])
			if err != nil {
				return nil, fmt.Errorf("dump: %s %q: %w", t, name, err)
			}
			out[name] = b
		}
		resources[t] = out
	}
	return json.MarshalIndent(struct {
		Version   map[string]string                     `json:"version"`
		Resources map[string]map[string]json.RawMessage `json:"resources"`
	}{versions, resources}, "", "  ")
}
