package envoy

import (
	"path/filepath"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// TestProxylessResources checks, for every golden input, what gRPC-Go's
// xDS client requires of the proxyless resources (the xds feature test
// proves it with the real client): one api_listener per service, named
// after it, whose HCM takes its routes over RDS from ADS and has the
// router as its only HTTP filter; one route configuration per service
// whose virtual host matches the service name and sends everything to the
// service's EDS cluster.
func TestProxylessResources(t *testing.T) {
	files, _ := filepath.Glob("testdata/in/*.yaml")
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			res := translateFile(t, in)
			if len(res.ProxylessListeners) != len(res.Listeners) || len(res.ProxylessRoutes) != len(res.Routes) {
				t.Fatalf("%d/%d proxyless listeners/routes for %d services",
					len(res.ProxylessListeners), len(res.ProxylessRoutes), len(res.Listeners))
			}
			clusters := map[string]bool{}
			for _, c := range res.Clusters {
				clusters[c.GetName()] = true
			}
			for i, l := range res.ProxylessListeners {
				svc := strings.TrimPrefix(res.Listeners[i].GetName(), "ingress_")
				if l.GetName() != svc || l.GetName() != ProxylessListenerName(svc) {
					t.Errorf("proxyless listener %q, want %q", l.GetName(), svc)
				}
				if l.GetAddress() != nil || len(l.GetFilterChains()) != 0 {
					t.Errorf("listener %s: an api_listener carries nothing but its name and api_listener", l.GetName())
				}
				var hcm hcmv3.HttpConnectionManager
				if err := l.GetApiListener().GetApiListener().UnmarshalTo(&hcm); err != nil {
					t.Fatalf("listener %s: api_listener is not an HCM: %v", l.GetName(), err)
				}
				if hcm.GetRds().GetConfigSource().GetAds() == nil || hcm.GetRds().GetRouteConfigName() != svc {
					t.Errorf("listener %s: rds %v, want ADS and route config %q", l.GetName(), hcm.GetRds(), svc)
				}
				if f := hcm.GetHttpFilters(); len(f) != 1 || f[0].GetName() != routerFilter {
					t.Errorf("listener %s: http filters %v, want the router only", l.GetName(), f)
				}

				rc := res.ProxylessRoutes[i]
				vh := rc.GetVirtualHosts()
				if rc.GetName() != svc || len(vh) != 1 || len(vh[0].GetDomains()) != 1 || vh[0].GetDomains()[0] != svc {
					t.Fatalf("route config %s: want one virtual host for domain %q: %v", rc.GetName(), svc, rc)
				}
				routes := vh[0].GetRoutes()
				if len(routes) != 1 || routes[0].GetMatch().GetPrefix() != "/" || !clusters[routes[0].GetRoute().GetCluster()] ||
					routes[0].GetRoute().GetCluster() != "service_"+svc {
					t.Errorf("route config %s: want prefix / to service_%s: %v", rc.GetName(), svc, routes)
				}
				if len(routes[0].GetTypedPerFilterConfig()) != 0 {
					t.Errorf("route config %s: per-filter config for filters the HCM does not have", rc.GetName())
				}
			}
			if err := res.CheckReferences(); err != nil {
				t.Error(err)
			}
		})
	}
}

// go-control-plane's Consistent does not follow api_listeners: the sidecar
// snapshot passes it, the proxyless one cannot, which is why the
// controller runs CheckReferences as well.
func TestProxylessSnapshotConsistency(t *testing.T) {
	res := mustTranslate(t, benchIR(3, 2))
	snap, err := cache.NewSnapshot("1", res.ByType())
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		t.Errorf("sidecar snapshot: %v", err)
	}
	proxyless, err := cache.NewSnapshot("1", res.ProxylessByType())
	if err != nil {
		t.Fatal(err)
	}
	if err := proxyless.Consistent(); err == nil {
		t.Log("go-control-plane's Consistent now follows api_listeners; CheckReferences may be redundant")
	}
	if err := res.CheckReferences(); err != nil {
		t.Error(err)
	}
}

func TestCheckReferencesFindsDanglingNames(t *testing.T) {
	res := mustTranslate(t, benchIR(2, 1))
	res.ProxylessRoutes = res.ProxylessRoutes[1:] // svc-0000's api_listener now names nothing
	err := res.CheckReferences()
	if err == nil || !strings.Contains(err.Error(), `listener "svc-0000": route configuration "svc-0000" does not exist`) {
		t.Errorf("err = %v, want the dangling RDS name of the api_listener", err)
	}

	res = mustTranslate(t, benchIR(2, 1))
	res.ProxylessListeners = res.ProxylessListeners[1:]
	err = res.CheckReferences()
	if err == nil || !strings.Contains(err.Error(), `route configuration "svc-0000": no listener names it`) {
		t.Errorf("err = %v, want the unreferenced route configuration", err)
	}

	res = mustTranslate(t, benchIR(2, 1))
	res.Endpoints = res.Endpoints[1:]
	err = res.CheckReferences()
	if err == nil || !strings.Contains(err.Error(), `cluster "service_svc-0000": no cluster load assignment`) {
		t.Errorf("err = %v, want the cluster without assignment", err)
	}
}

// A service named ingress_<other> would have a proxyless listener with the
// name of <other>'s sidecar listener: Translate refuses it.
func TestProxylessNamesDoNotClash(t *testing.T) {
	_, err := Translate(IR{Services: []Service{
		{Name: "orders", Listener: Listener{Port: 10000}},
		{Name: "ingress_orders", Listener: Listener{Port: 10001}},
	}})
	if err == nil || !strings.Contains(err.Error(), `listener "ingress_orders": defined twice`) {
		t.Fatalf("err = %v, want the clash named", err)
	}
}
