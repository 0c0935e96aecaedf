package envoy

import (
	"cmp"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// buildLoadAssignment makes the service's EDS resource: one locality
// (weight 1, which Envoy requires once any locality is weighted, and
// without which gRPC-Go drops the locality) holding the endpoints sorted by
// address and port. The locality is present but unnamed: gRPC-Go NACKs an
// assignment with a locality that has no locality field at all ("EDS
// response contains a locality without ID"). A service with no endpoints
// still gets an empty assignment so its cluster warms.
func buildLoadAssignment(s Service) *endpointv3.ClusterLoadAssignment {
	eps := slices.Clone(s.Endpoints)
	slices.SortFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
	})
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: clusterName(s)}
	if len(eps) == 0 {
		return cla
	}
	lb := make([]*endpointv3.LbEndpoint, len(eps))
	for i, e := range eps {
		lb[i] = lbEndpoint(e)
	}
	cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{
		Locality:            &corev3.Locality{},
		LoadBalancingWeight: wrapperspb.UInt32(1),
		LbEndpoints:         lb,
	}}
	return cla
}

func lbEndpoint(e Endpoint) *endpointv3.LbEndpoint {
	le := &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: socketAddress(e.Address, e.Port),
		}},
	}
	if e.Weight > 0 {
		le.LoadBalancingWeight = wrapperspb.UInt32(e.Weight)
	}
	return le
}
